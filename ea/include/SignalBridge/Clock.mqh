//+------------------------------------------------------------------+
//| SignalBridge/Clock.mqh                                           |
//| The server's time, from TimeGMT() corrected by the offset every   |
//| response's X-Server-Time teaches: a terminal whose clock is wrong |
//| still signs fresh timestamps.                                     |
//+------------------------------------------------------------------+
#ifndef SB_CLOCK_MQH
#define SB_CLOCK_MQH

//--- the value of X-Server-Time (any case) in raw headers "Name: value\r\n..."
bool SbServerTimeHeader(const string headers, long &value)
  {
   string lower = headers;
   StringToLower(lower);
   int start = 0;
   int length = StringLen(lower);
   while(start < length)
     {
      int end = StringFind(lower, "\n", start);
      if(end < 0)
         end = length;
      string line = StringSubstr(lower, start, end - start);
      start = end + 1;
      if(StringFind(line, "x-server-time:") != 0)
         continue;
      int i = 14;
      while(i < StringLen(line) && StringGetCharacter(line, i) == ' ')
         i++;
      long number = 0;
      int digits = 0;
      while(i < StringLen(line) && StringGetCharacter(line, i) >= '0' && StringGetCharacter(line, i) <= '9' && digits < 12)
        {
         number = number * 10 + (StringGetCharacter(line, i) - '0');
         i++;
         digits++;
        }
      if(digits == 0)
         return false;
      value = number;
      return true;
     }
   return false;
  }

//--- Unix seconds as ISO 8601 UTC with a Z, whole seconds: 2026-01-01T00:00:00Z
string SbIsoTime(const datetime value)
  {
   long seconds = (long)value;
   long days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
   long rest = seconds - days * 86400;
   long z = days + 719468;
   long era = (z >= 0 ? z : z - 146096) / 146097;
   long doe = z - era * 146097;
   long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
   long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
   long mp = (5 * doy + 2) / 153;
   long day = doy - (153 * mp + 2) / 5 + 1;
   long month = mp < 10 ? mp + 3 : mp - 9;
   long year = yoe + era * 400 + (month <= 2 ? 1 : 0);
   return IntegerToString(year, 4, '0') + "-" + IntegerToString(month, 2, '0') + "-" + IntegerToString(day, 2, '0') + "T" +
          IntegerToString(rest / 3600, 2, '0') + ":" + IntegerToString((rest / 60) % 60, 2, '0') + ":" +
          IntegerToString(rest % 60, 2, '0') + "Z";
  }

class SbClock
  {
private:
   long              m_offset;
   bool              m_known;
public:
                     SbClock(void) { m_offset = 0; m_known = false; }
   long              Offset(void) { return m_offset; }
   bool              Known(void) { return m_known; }
   //--- the offset from one reading of the server's clock taken at local GMT time local_gmt
   void              Learn(const long server_time, const datetime local_gmt)
     {
      m_offset = server_time - (long)local_gmt;
      m_known = true;
     }
   datetime          At(const datetime local_gmt) { return (datetime)((long)local_gmt + m_offset); }
   datetime          Now(void) { return At(TimeGMT()); }
   //--- learns from the X-Server-Time line of raw response headers; false when absent
   bool              LearnFromHeaders(const string headers, const datetime local_gmt)
     {
      long value = 0;
      if(!SbServerTimeHeader(headers, value))
         return false;
      Learn(value, local_gmt);
      return true;
     }
  };

#endif
