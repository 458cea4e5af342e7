//+------------------------------------------------------------------+
//| SignalBridge/Log.mqh                                             |
//| The Experts log: every line starts "SignalBridge <LEVEL> <area>:" |
//| so ea/README.md can say what each one means.                      |
//+------------------------------------------------------------------+
#ifndef SB_LOG_MQH
#define SB_LOG_MQH

enum ENUM_SB_LOG_DETAIL
  {
   SB_LOG_ERRORS = 0,  // errors only
   SB_LOG_NORMAL = 1,  // errors, trades and reports
   SB_LOG_DEBUG = 2    // everything, every poll included
  };

int g_sb_log_detail = SB_LOG_NORMAL;

void SbLogError(const string area, const string text)
  {
   Print("SignalBridge ERROR ", area, ": ", text);
  }

void SbLogInfo(const string area, const string text)
  {
   if(g_sb_log_detail >= SB_LOG_NORMAL)
      Print("SignalBridge INFO ", area, ": ", text);
  }

void SbLogDebug(const string area, const string text)
  {
   if(g_sb_log_detail >= SB_LOG_DEBUG)
      Print("SignalBridge DEBUG ", area, ": ", text);
  }

//--- an error the owner must act on: the Experts log and an Alert window
void SbLogAlert(const string area, const string text)
  {
   Print("SignalBridge ERROR ", area, ": ", text);
   Alert("SignalBridge: ", text);
  }

#endif
