//+------------------------------------------------------------------+
//| SignalBridge/Http.mqh                                            |
//| Signed requests to the side server through WebRequest: the four   |
//| headers of section 2, the clock learned from X-Server-Time, and   |
//| the allow-list error told to the owner in words.                  |
//+------------------------------------------------------------------+
#ifndef SB_HTTP_MQH
#define SB_HTTP_MQH

#include <SignalBridge/Signing.mqh>
#include <SignalBridge/Json.mqh>
#include <SignalBridge/Clock.mqh>
#include <SignalBridge/Log.mqh>

#define SB_HTTP_NETWORK     -1  // no answer: WebRequest failed (GetLastError() in LastError())
#define SB_HTTP_NOT_ALLOWED -2  // WebRequest refused the URL: it is not in the allow list

//--- scheme://host[:port] of a URL, and the path after it (no trailing slash); false when
//--- the URL is not http:// or https://
bool SbSplitUrl(const string url, string &origin, string &prefix)
  {
   int scheme_end = StringFind(url, "://");
   if(scheme_end < 0)
      return false;
   string scheme = StringSubstr(url, 0, scheme_end);
   StringToLower(scheme);
   if(scheme != "http" && scheme != "https")
      return false;
   int path_start = StringFind(url, "/", scheme_end + 3);
   if(path_start < 0)
     {
      origin = scheme + StringSubstr(url, scheme_end);
      prefix = "";
     }
   else
     {
      origin = scheme + StringSubstr(url, scheme_end, path_start - scheme_end);
      prefix = StringSubstr(url, path_start);
     }
   if(StringLen(origin) <= scheme_end + 3 || StringFind(prefix, "?") >= 0 || StringFind(prefix, "#") >= 0)
      return false;
   while(StringLen(prefix) > 0 && StringGetCharacter(prefix, StringLen(prefix) - 1) == '/')
      prefix = StringSubstr(prefix, 0, StringLen(prefix) - 1);
   return true;
  }

class SbHttp
  {
private:
   string            m_origin;
   string            m_prefix;
   string            m_device;
   string            m_secret;
   int               m_not_allowed_code;
   ulong             m_counter;
   bool              m_told_allow_list;
   int               m_last_error;
   int               m_requests;

public:
   SbClock           clock;

                     SbHttp(void) { m_counter = 0; m_told_allow_list = false; m_last_error = 0; m_not_allowed_code = 0; m_requests = 0; }

   //--- not_allowed_code: WebRequest's error for a URL missing from the allow list
   //--- (4014 in MetaTrader 5, 4060 in MetaTrader 4)
   bool              Setup(const string url, const string device_id, const string secret, const int not_allowed_code)
     {
      if(!SbSplitUrl(url, m_origin, m_prefix))
         return false;
      m_device = device_id;
      m_secret = secret;
      m_not_allowed_code = not_allowed_code;
      return true;
     }

   string            Origin(void) { return m_origin; }
   int               LastError(void) { return m_last_error; }
   int               Requests(void) { return m_requests; }

   //--- one signed request; the HTTP status, SB_HTTP_NETWORK or SB_HTTP_NOT_ALLOWED.
   //--- A 401 stale_timestamp (the clock just learned) or replayed_nonce is retried once.
   int               Send(const string method, const string path, const string body, const int timeout_ms, string &response)
     {
      response = "";
      uchar bytes[];
      SbUtf8(body, bytes);
      char data[];
      ArrayResize(data, ArraySize(bytes));
      for(int i = 0; i < ArraySize(bytes); i++)
         data[i] = (char)bytes[i];
      string target = m_prefix + path;
      int status = SB_HTTP_NETWORK;
      for(int attempt = 0; attempt < 2; attempt++)
        {
         string timestamp = IntegerToString(clock.Now());
         m_counter++;
         string nonce = SbNewNonce(m_device, m_counter);
         string headers = "X-Device-Id: " + m_device + "\r\nX-Timestamp: " + timestamp + "\r\nX-Nonce: " + nonce +
                          "\r\nX-Signature: " + SbSignRequest(m_secret, method, target, timestamp, nonce, bytes) + "\r\n";
         if(ArraySize(bytes) > 0)
            headers += "Content-Type: application/json\r\n";
         char result[];
         string result_headers = "";
         ResetLastError();
         m_requests++;
         status = WebRequest(method, m_origin + target, headers, timeout_ms, data, result, result_headers);
         if(status == -1)
           {
            m_last_error = GetLastError();
            if(m_last_error == m_not_allowed_code)
              {
               TellAllowList();
               return SB_HTTP_NOT_ALLOWED;
              }
            SbLogDebug("network", method + " " + target + " failed: WebRequest error " + IntegerToString(m_last_error));
            return SB_HTTP_NETWORK;
           }
         m_last_error = 0;
         long before = clock.Offset();
         if(clock.LearnFromHeaders(result_headers, TimeGMT()) && MathAbs(clock.Offset() - before) > 2)
            SbLogInfo("clock", "the terminal's clock is " + IntegerToString((long)MathAbs(clock.Offset())) +
                      (clock.Offset() > 0 ? " s behind" : " s ahead of") + " the server's; requests are signed with the server's time");
         uchar text[];
         ArrayResize(text, ArraySize(result));
         for(int i = 0; i < ArraySize(result); i++)
            text[i] = (uchar)result[i];
         response = CharArrayToString(text, 0, WHOLE_ARRAY, CP_UTF8);
         SbLogDebug("http", method + " " + target + " -> " + IntegerToString(status));
         if(status == 401 && attempt == 0 &&
            (StringFind(response, "\"stale_timestamp\"") >= 0 || StringFind(response, "\"replayed_nonce\"") >= 0))
            continue;
         break;
        }
      return status;
     }

   //--- the allow-list step, once per start: the Experts log and an Alert
   void              TellAllowList(void)
     {
      string text = "MetaTrader refuses WebRequest to " + m_origin + " (error " + IntegerToString(m_last_error) +
                    "). Open Tools -> Options -> Expert Advisors, tick \"Allow WebRequest for listed URL\", add " +
                    m_origin + " to the list, press OK; the EA retries by itself.";
      if(!m_told_allow_list)
         SbLogAlert("setup", text);
      else
         SbLogDebug("setup", text);
      m_told_allow_list = true;
     }

   bool              ToldAllowList(void) { return m_told_allow_list; }
  };

//--- the value of "error" in a JSON error body, or ""
string SbErrorCode(const string response)
  {
   SbJson json;
   if(!json.Parse(response) || json.MemberType(json.Root(), "error") != SB_JSON_STRING)
      return "";
   return json.MemberText(json.Root(), "error");
  }

//--- the value of "message" in a JSON error body, or the body cut short
string SbErrorMessage(const string response)
  {
   SbJson json;
   if(json.Parse(response) && json.MemberType(json.Root(), "message") == SB_JSON_STRING)
     {
      string message = json.MemberText(json.Root(), "message");
      int fields = json.Find(json.Root(), "fields");
      for(int i = 0; i < json.Count(fields); i++)
        {
         int field = json.Child(fields, i);
         message += " " + json.Key(field) + ": " + json.Text(field) + ".";
        }
      return message;
     }
   return StringSubstr(response, 0, 200);
  }

#endif
