//+------------------------------------------------------------------+
//| SignalBridge/Signing.mqh                                         |
//| Request signing of EA_PROTOCOL.md section 2: the canonical        |
//| string, the signature, nonces, and the start-up self-test with    |
//| the contract's two test vectors.                                  |
//+------------------------------------------------------------------+
#ifndef SB_SIGNING_MQH
#define SB_SIGNING_MQH

#include <SignalBridge/Sha256.mqh>

//--- METHOD \n TARGET \n TIMESTAMP \n NONCE \n hex SHA-256 of the body bytes
string SbCanonicalString(const string method, const string target, const string timestamp,
                         const string nonce, const uchar &body[])
  {
   uchar digest[];
   SbSha256(body, digest);
   string upper = method;
   StringToUpper(upper);
   return upper + "\n" + target + "\n" + timestamp + "\n" + nonce + "\n" + SbHex(digest);
  }

//--- lowercase hex HMAC-SHA256 with the secret's ASCII bytes as the key
string SbSignature(const string secret, const string canonical)
  {
   uchar key[];
   SbUtf8(secret, key);
   uchar message[];
   SbUtf8(canonical, message);
   uchar digest[];
   SbHmacSha256(key, message, digest);
   return SbHex(digest);
  }

string SbSignRequest(const string secret, const string method, const string target,
                     const string timestamp, const string nonce, const uchar &body[])
  {
   return SbSignature(secret, SbCanonicalString(method, target, timestamp, nonce, body));
  }

//--- 32 characters of [0-9a-f], unique per request: time, ticks, a counter and MathRand
string SbNewNonce(const string device_id, const ulong counter)
  {
   string seed = device_id + ":" + IntegerToString(TimeGMT()) + ":" +
                 IntegerToString((long)GetMicrosecondCount()) + ":" +
                 IntegerToString((long)GetTickCount()) + ":" + IntegerToString((long)counter) +
                 ":" + IntegerToString(MathRand()) + ":" + IntegerToString(MathRand());
   return StringSubstr(SbSha256Hex(seed), 0, 32);
  }

#define SB_TEST_SECRET "k3Jd9_vQ2mX8pL5tR7wZ1yB4nC6fH0sA2eG8uI3oK9w"
#define SB_TEST_BODY_2 "{\"report_id\":\"r-7f3a9c21\",\"instruction_id\":\"ins_01\",\"ticket\":5012345,\"price\":\"1.08512\",\"volume\":\"0.10\"}"

//--- the two test vectors of section 2; false and why when this build signs differently
bool SbSigningSelfTest(string &problem)
  {
   uchar empty[];
   ArrayResize(empty, 0);
   string first = SbSignRequest(SB_TEST_SECRET, "GET", "/api/v1/ea/instructions?wait=20",
                                "1767225600", "n0nce-0001-abcdef", empty);
   if(first != "711adf5aab004d044f9618b4a8fd990215f5a615d3d3a0d6094ccd8b9c61580e")
     {
      problem = "test vector 1 (GET instructions) gives " + first;
      return false;
     }
   uchar body[];
   SbUtf8(SB_TEST_BODY_2, body);
   uchar digest[];
   SbSha256(body, digest);
   if(SbHex(digest) != "32f873fa79f963954b3b42867bb267807a6e5307bbe6ba98f05a951f7f6ec1c2")
     {
      problem = "test vector 2's body SHA-256 gives " + SbHex(digest);
      return false;
     }
   string second = SbSignRequest(SB_TEST_SECRET, "POST", "/api/v1/exec/fill", "1767225601",
                                 "n0nce-0002-abcdef", body);
   if(second != "f3d1a2543a9f6c61f0564e158c1118752e80fb721dc3e3574e2dab841f00b98f")
     {
      problem = "test vector 2 (POST fill) gives " + second;
      return false;
     }
   problem = "";
   return true;
  }

#endif
