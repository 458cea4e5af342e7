//+------------------------------------------------------------------+
//| SignalBridge.mq5                                                 |
//| Carries the trading signals you approve in the SignalBridge bot  |
//| to this MetaTrader 5 terminal. This file only wires the inputs   |
//| and events; the logic is in Include/SignalBridge/*.mqh.          |
//| Setup: see ea/README.md.                                         |
//| Compiled and run on Linux by the tests (ea/shim) except: the     |
//| #property lines, the word input, MetaTrader's runtime itself,    |
//| and what a real OnTradeTransaction carries (the EA reads none).  |
//+------------------------------------------------------------------+
#property copyright "SignalBridge"
#property version   "1.10"
#property description "Executes the signals you approve in the SignalBridge bot."
#property description "Tools -> Options -> Expert Advisors -> Allow WebRequest for listed URL: add the server's URL."

#include <SignalBridge/BrokerMT5.mqh>
#include <SignalBridge/Engine.mqh>

input string ServerUrl = "https://signals.example.com"; // Server URL (also add it to the WebRequest list)
input string DeviceId = "";                             // Device ID (from the bot's /devices)
input string Secret = "";                               // Secret (from the bot's /devices)
input long   MagicNumber = 20260113;                    // Magic number of this EA's trades
input int    PollWaitSeconds = 2;                       // Poll wait, seconds (0-25; the EA waits inside WebRequest)
input int    SlippagePoints = 20;                       // Slippage for market orders, points
input int    MaxAgeSeconds = 120;                       // Oldest open instruction still acted on, seconds (0: no limit)
input ENUM_SB_LOG_DETAIL LogDetail = SB_LOG_NORMAL;     // Log detail

SbEngine g_engine;

int OnInit()
  {
   return g_engine.Init(ServerUrl, DeviceId, Secret, MagicNumber, PollWaitSeconds, SlippagePoints, MaxAgeSeconds, LogDetail);
  }

void OnDeinit(const int reason)
  {
   g_engine.Deinit(reason);
  }

void OnTimer()
  {
   g_engine.Tick();
  }

//--- a fill, a close at the stop loss or take profit, a deleted order: the EA looks at its
//--- positions at once (the timer would find it within half a second)
void OnTradeTransaction(const MqlTradeTransaction &trans, const MqlTradeRequest &request, const MqlTradeResult &result)
  {
   if(trans.type == TRADE_TRANSACTION_ORDER_DELETE || trans.type == TRADE_TRANSACTION_DEAL_ADD)
      g_engine.TradeEvent();
  }
