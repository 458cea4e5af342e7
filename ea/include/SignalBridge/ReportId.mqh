//+------------------------------------------------------------------+
//| SignalBridge/ReportId.mqh                                        |
//| Report ids derived from the instruction id and the step, so a     |
//| report resent after a crash or a network error is a duplicate     |
//| (200), never a second record.                                     |
//+------------------------------------------------------------------+
#ifndef SB_REPORTID_MQH
#define SB_REPORTID_MQH

#include <SignalBridge/Sha256.mqh>
#include <SignalBridge/Instruction.mqh>

#define SB_STEP_ACK   "ack"
#define SB_STEP_FILL  "fill"
#define SB_STEP_ERROR "err"

//--- "<step>-<instruction id>" when that is 8-64 characters of [A-Za-z0-9_-];
//--- otherwise "<step>-" and 40 hex characters of SHA-256(instruction id)
string SbReportId(const string instruction_id, const string step)
  {
   string plain = step + "-" + instruction_id;
   if(SbIsRecordId(plain) && StringLen(plain) >= 8)
      return plain;
   return step + "-" + StringSubstr(SbSha256Hex(instruction_id), 0, 40);
  }

#endif
