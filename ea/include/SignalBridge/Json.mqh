//+------------------------------------------------------------------+
//| SignalBridge/Json.mqh                                            |
//| A small JSON reader (a tree of nodes in one array) and writer.    |
//| The writer escapes every non-ASCII character, so what the EA      |
//| sends is ASCII and its bytes are its characters.                  |
//+------------------------------------------------------------------+
#ifndef SB_JSON_MQH
#define SB_JSON_MQH

#define SB_JSON_NULL   0
#define SB_JSON_BOOL   1
#define SB_JSON_NUMBER 2
#define SB_JSON_STRING 3
#define SB_JSON_ARRAY  4
#define SB_JSON_OBJECT 5
#define SB_JSON_MAX_DEPTH 32

class SbJsonNode
  {
public:
   int               type;
   string            key;
   string            text;   // a string's value, a number's digits, "true"/"false"
   int               first;  // first child (array, object), -1 when none
   int               last;
   int               next;   // next sibling, -1 when none
   int               count;
                     SbJsonNode(void) { type = SB_JSON_NULL; first = -1; last = -1; next = -1; count = 0; }
  };

class SbJson
  {
private:
   SbJsonNode        m_nodes[];
   string            m_text;
   int               m_pos;
   int               m_length;
   string            m_error;

   int               Add(const int type, const int parent, const string key)
     {
      int index = ArraySize(m_nodes);
      ArrayResize(m_nodes, index + 1, 64);
      m_nodes[index].type = type;
      m_nodes[index].key = key;
      m_nodes[index].text = "";
      m_nodes[index].first = -1;
      m_nodes[index].last = -1;
      m_nodes[index].next = -1;
      m_nodes[index].count = 0;
      if(parent >= 0)
        {
         if(m_nodes[parent].last >= 0)
            m_nodes[m_nodes[parent].last].next = index;
         else
            m_nodes[parent].first = index;
         m_nodes[parent].last = index;
         m_nodes[parent].count++;
        }
      return index;
     }

   ushort            Peek(void) { return m_pos < m_length ? StringGetCharacter(m_text, m_pos) : 0; }

   void              SkipSpace(void)
     {
      while(m_pos < m_length)
        {
         ushort c = StringGetCharacter(m_text, m_pos);
         if(c != ' ' && c != '\t' && c != '\r' && c != '\n')
            break;
         m_pos++;
        }
     }

   bool              Fail(const string why)
     {
      if(m_error == "")
         m_error = why + " at character " + IntegerToString(m_pos);
      return false;
     }

   int               HexDigit(const ushort c)
     {
      if(c >= '0' && c <= '9')
         return c - '0';
      if(c >= 'a' && c <= 'f')
         return c - 'a' + 10;
      if(c >= 'A' && c <= 'F')
         return c - 'A' + 10;
      return -1;
     }

   bool              ReadString(string &out)
     {
      out = "";
      m_pos++;  // the opening quote
      int run = m_pos;
      while(m_pos < m_length)
        {
         ushort c = StringGetCharacter(m_text, m_pos);
         if(c == '"')
           {
            out += StringSubstr(m_text, run, m_pos - run);
            m_pos++;
            return true;
           }
         if(c < 0x20)
            return Fail("control character in a string");
         if(c != '\\')
           {
            m_pos++;
            continue;
           }
         out += StringSubstr(m_text, run, m_pos - run);
         m_pos++;
         if(m_pos >= m_length)
            break;
         ushort e = StringGetCharacter(m_text, m_pos);
         m_pos++;
         if(e == '"')
            out += "\"";
         else if(e == '\\')
            out += "\\";
         else if(e == '/')
            out += "/";
         else if(e == 'b')
            out += ShortToString(8);
         else if(e == 'f')
            out += ShortToString(12);
         else if(e == 'n')
            out += "\n";
         else if(e == 'r')
            out += "\r";
         else if(e == 't')
            out += "\t";
         else if(e == 'u')
           {
            if(m_pos + 4 > m_length)
               return Fail("short \\u escape");
            int code = 0;
            for(int i = 0; i < 4; i++)
              {
               int digit = HexDigit(StringGetCharacter(m_text, m_pos + i));
               if(digit < 0)
                  return Fail("bad \\u escape");
               code = code * 16 + digit;
              }
            m_pos += 4;
            out += ShortToString((ushort)code);
           }
         else
            return Fail("bad escape");
         run = m_pos;
        }
      return Fail("unterminated string");
     }

   bool              ReadNumber(string &out)
     {
      int start = m_pos;
      if(Peek() == '-')
         m_pos++;
      int digits = 0;
      while(Peek() >= '0' && Peek() <= '9')
        {
         m_pos++;
         digits++;
        }
      if(digits == 0)
         return Fail("bad number");
      if(Peek() == '.')
        {
         m_pos++;
         digits = 0;
         while(Peek() >= '0' && Peek() <= '9')
           {
            m_pos++;
            digits++;
           }
         if(digits == 0)
            return Fail("bad number");
        }
      if(Peek() == 'e' || Peek() == 'E')
        {
         m_pos++;
         if(Peek() == '+' || Peek() == '-')
            m_pos++;
         digits = 0;
         while(Peek() >= '0' && Peek() <= '9')
           {
            m_pos++;
            digits++;
           }
         if(digits == 0)
            return Fail("bad number");
        }
      out = StringSubstr(m_text, start, m_pos - start);
      return true;
     }

   bool              ReadWord(const string word)
     {
      if(StringSubstr(m_text, m_pos, StringLen(word)) != word)
         return Fail("unexpected character");
      m_pos += StringLen(word);
      return true;
     }

   bool              ReadValue(const int parent, const string key, const int depth)
     {
      if(depth > SB_JSON_MAX_DEPTH)
         return Fail("nested too deeply");
      SkipSpace();
      ushort c = Peek();
      if(c == '{')
        {
         int node = Add(SB_JSON_OBJECT, parent, key);
         m_pos++;
         SkipSpace();
         if(Peek() == '}')
           {
            m_pos++;
            return true;
           }
         while(true)
           {
            SkipSpace();
            if(Peek() != '"')
               return Fail("expected a key");
            string name;
            if(!ReadString(name))
               return false;
            SkipSpace();
            if(Peek() != ':')
               return Fail("expected ':'");
            m_pos++;
            if(!ReadValue(node, name, depth + 1))
               return false;
            SkipSpace();
            if(Peek() == ',')
              {
               m_pos++;
               continue;
              }
            if(Peek() == '}')
              {
               m_pos++;
               return true;
              }
            return Fail("expected ',' or '}'");
           }
        }
      if(c == '[')
        {
         int node = Add(SB_JSON_ARRAY, parent, key);
         m_pos++;
         SkipSpace();
         if(Peek() == ']')
           {
            m_pos++;
            return true;
           }
         while(true)
           {
            if(!ReadValue(node, "", depth + 1))
               return false;
            SkipSpace();
            if(Peek() == ',')
              {
               m_pos++;
               continue;
              }
            if(Peek() == ']')
              {
               m_pos++;
               return true;
              }
            return Fail("expected ',' or ']'");
           }
        }
      if(c == '"')
        {
         string value;
         if(!ReadString(value))
            return false;
         int node = Add(SB_JSON_STRING, parent, key);
         m_nodes[node].text = value;
         return true;
        }
      if(c == '-' || (c >= '0' && c <= '9'))
        {
         string digits;
         if(!ReadNumber(digits))
            return false;
         int node = Add(SB_JSON_NUMBER, parent, key);
         m_nodes[node].text = digits;
         return true;
        }
      if(c == 't' || c == 'f')
        {
         string word = (c == 't') ? "true" : "false";
         if(!ReadWord(word))
            return false;
         int node = Add(SB_JSON_BOOL, parent, key);
         m_nodes[node].text = word;
         return true;
        }
      if(c == 'n')
        {
         if(!ReadWord("null"))
            return false;
         Add(SB_JSON_NULL, parent, key);
         return true;
        }
      return Fail("unexpected character");
     }

public:
   //--- parses text; the root is node 0; false and Error() when it is not JSON
   bool              Parse(const string text)
     {
      ArrayResize(m_nodes, 0);
      m_text = text;
      m_pos = 0;
      m_length = StringLen(text);
      m_error = "";
      if(!ReadValue(-1, "", 0))
         return false;
      SkipSpace();
      if(m_pos != m_length)
         return Fail("text after the value");
      return true;
     }

   string            Error(void) { return m_error; }
   int               Root(void) { return 0; }
   int               Type(const int node) { return node >= 0 && node < ArraySize(m_nodes) ? m_nodes[node].type : -1; }
   int               Count(const int node) { return node >= 0 && node < ArraySize(m_nodes) ? m_nodes[node].count : 0; }
   string            Key(const int node) { return node >= 0 && node < ArraySize(m_nodes) ? m_nodes[node].key : ""; }
   string            Text(const int node) { return node >= 0 && node < ArraySize(m_nodes) ? m_nodes[node].text : ""; }

   //--- the member named key of an object node, or -1
   int               Find(const int node, const string key)
     {
      if(Type(node) != SB_JSON_OBJECT)
         return -1;
      for(int child = m_nodes[node].first; child >= 0; child = m_nodes[child].next)
         if(m_nodes[child].key == key)
            return child;
      return -1;
     }

   //--- the index-th element of an array node, or -1
   int               Item(const int node, const int index)
     {
      if(Type(node) != SB_JSON_ARRAY)
         return -1;
      return Child(node, index);
     }

   //--- the index-th child of an array or object node, or -1
   int               Child(const int node, const int index)
     {
      if(Type(node) != SB_JSON_ARRAY && Type(node) != SB_JSON_OBJECT)
         return -1;
      int i = 0;
      for(int child = m_nodes[node].first; child >= 0; child = m_nodes[child].next)
        {
         if(i == index)
            return child;
         i++;
        }
      return -1;
     }

   bool              Has(const int node, const string key) { return Find(node, key) >= 0; }
   int               MemberType(const int node, const string key) { return Type(Find(node, key)); }
   string            MemberText(const int node, const string key) { return Text(Find(node, key)); }
  };

//--- text as a JSON string literal: quotes, escapes, every non-ASCII character as \uXXXX
string SbJsonQuote(const string text)
  {
   string digits = "0123456789abcdef";
   string out = "\"";
   int length = StringLen(text);
   for(int i = 0; i < length; i++)
     {
      ushort c = StringGetCharacter(text, i);
      if(c == '"')
         out += "\\\"";
      else if(c == '\\')
         out += "\\\\";
      else if(c == '\n')
         out += "\\n";
      else if(c == '\r')
         out += "\\r";
      else if(c == '\t')
         out += "\\t";
      else if(c < 0x20 || c > 0x7e)
         out += "\\u" + StringSubstr(digits, (c >> 12) & 15, 1) + StringSubstr(digits, (c >> 8) & 15, 1) +
                StringSubstr(digits, (c >> 4) & 15, 1) + StringSubstr(digits, c & 15, 1);
      else
         out += StringSubstr(text, i, 1);
     }
   return out + "\"";
  }

//--- builds one JSON object, member by member, in the order given
class SbJsonObject
  {
private:
   string            m_text;
   bool              m_empty;
   void              Key(const string key)
     {
      if(!m_empty)
         m_text += ",";
      m_empty = false;
      m_text += SbJsonQuote(key) + ":";
     }
public:
                     SbJsonObject(void) { m_text = "{"; m_empty = true; }
   void              Str(const string key, const string value) { Key(key); m_text += SbJsonQuote(value); }
   void              Int(const string key, const long value) { Key(key); m_text += IntegerToString(value); }
   void              Raw(const string key, const string json) { Key(key); m_text += json; }
   string            Text(void) { return m_text + "}"; }
  };

#endif
