//+------------------------------------------------------------------+
//| SignalBridge/Broker.mqh                                          |
//| What the engine asks of a platform's trade functions. Each        |
//| platform file (BrokerMT5.mqh, BrokerMT4.mqh) includes this one    |
//| and defines the same functions:                                   |
//|   SbBrokerSelectSymbol, SbBrokerTradingAllowed, SbBrokerLimits,   |
//|   SbBrokerOpen, SbBrokerModify, SbBrokerClose, SbBrokerDelete,    |
//|   SbBrokerFind, SbBrokerFindByComment, SbBrokerFindClose,         |
//|   SbBrokerFollow, SbBrokerOwnTickets, SbBrokerConnected,          |
//|   SbBrokerSymbol, SbBrokerClosed, SbBrokerProfit (v1.1).          |
//| The account's figures (SbBrokerAccount) read the same on both.    |
//| Every trade call's result is checked and logged with the trade    |
//| server's code and GetLastError().                                 |
//+------------------------------------------------------------------+
#ifndef SB_BROKER_MQH
#define SB_BROKER_MQH

#include <SignalBridge/Journal.mqh>
#include <SignalBridge/Instruction.mqh>
#include <SignalBridge/Log.mqh>

class SbOrderRequest
  {
public:
   string            symbol;
   string            side;        // buy, sell
   string            order_type;  // market, limit, stop
   double            price;       // limit and stop: the entry
   double            stop_loss;   // 0: none
   double            take_profit; // 0: none
   double            volume;
   long              magic;
   string            comment;
   int               slippage;    // points
                     SbOrderRequest(void) { price = 0; stop_loss = 0; take_profit = 0; volume = 0; magic = 0; slippage = 0; }
  };

class SbTradeResult
  {
public:
   bool              ok;
   int               code;        // the trade server's return code, or a 9000x code
   string            message;
   long              ticket;      // the position or order acted on
   long              remainder;   // MT4 partial close: the ticket of what is left (0: none)
   bool              pending;     // open: a pending order was placed, not a position opened
   double            price;
   double            volume;
   double            profit;
   bool              has_profit;
   bool              unknown;     // failed without saying whether it was done (a timeout)
                     SbTradeResult(void) { Clear(); }
   void              Clear(void)
     {
      ok = false; code = 0; message = ""; ticket = 0; remainder = 0; pending = false;
      price = 0; volume = 0; profit = 0; has_profit = false; unknown = false;
     }
  };

class SbTicketInfo
  {
public:
   int               kind;        // SB_TICKET_POSITION, SB_TICKET_ORDER, SB_TICKET_CLOSED, SB_TICKET_NONE
   long              ticket;
   string            symbol;
   string            comment;
   string            side;        // buy, sell
   double            volume;
   double            price;       // open price (position) or order price (pending order)
   double            stop_loss;
   double            take_profit;
                     SbTicketInfo(void) { kind = SB_TICKET_NONE; ticket = 0; side = ""; volume = 0; price = 0; stop_loss = 0; take_profit = 0; }
  };

//--- a symbol's prices and the figures sizing needs
class SbSymbolData
  {
public:
   double            bid;
   double            ask;
   double            point;
   int               digits;
   double            tick_size;
   double            tick_value;   // account currency per tick_size per lot
   double            volume_min;
   double            volume_step;
   double            volume_max;
                     SbSymbolData(void) { bid = 0; ask = 0; point = 0; digits = 0; tick_size = 0; tick_value = 0; volume_min = 0; volume_step = 0; volume_max = 0; }
   //--- the spread in whole points
   int               Spread(void) { return point > 0 ? (int)MathRound((ask - bid) / point) : 0; }
  };

//--- how a position of this EA ended, from the deal history (MT5) or the order history (MT4)
class SbClosedInfo
  {
public:
   string            reason;       // tp, sl, stop_out, manual, expert
   double            price;
   double            volume;
   double            profit;       // profit + swap + commission, account currency
   datetime          time;         // the trade server's time of the close
                     SbClosedInfo(void) { reason = ""; price = 0; volume = 0; profit = 0; time = 0; }
  };

class SbAccountData
  {
public:
   string            currency;
   double            balance;
   double            equity;
   double            margin_free;
   long              leverage;
   bool              trade_allowed;
   string            company;
   string            server;
  };

//--- the account's figures (the same functions in MetaTrader 5 and 4 build 600+); never
//--- the account number
void SbBrokerAccount(SbAccountData &account)
  {
   account.currency = AccountInfoString(ACCOUNT_CURRENCY);
   account.balance = AccountInfoDouble(ACCOUNT_BALANCE);
   account.equity = AccountInfoDouble(ACCOUNT_EQUITY);
   account.margin_free = AccountInfoDouble(ACCOUNT_MARGIN_FREE);
   account.leverage = AccountInfoInteger(ACCOUNT_LEVERAGE);
   account.trade_allowed = AccountInfoInteger(ACCOUNT_TRADE_ALLOWED) != 0 && AccountInfoInteger(ACCOUNT_TRADE_EXPERT) != 0;
   account.company = AccountInfoString(ACCOUNT_COMPANY);
   account.server = AccountInfoString(ACCOUNT_SERVER);
  }

//--- a failed trade call: the server's code, or 90009 / 90006 when it says why in those terms
void SbTradeFailed(SbTradeResult &result, const int code, const string text, const bool market_closed, const bool not_allowed)
  {
   result.ok = false;
   if(market_closed)
     {
      result.code = SB_ERR_MARKET_CLOSED;
      result.message = "market closed: " + text;
     }
   else if(not_allowed)
     {
      result.code = SB_ERR_NOT_ALLOWED;
      result.message = "trading is not allowed: " + text;
     }
   else
     {
      result.code = code;
      result.message = text;
     }
  }

#endif
