//+------------------------------------------------------------------+
//| SignalBridge/Sha256.mqh                                          |
//| SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) over bytes, in    |
//| plain MQL so MetaTrader 4 and 5 sign alike and the Linux tests    |
//| run this very code.                                               |
//+------------------------------------------------------------------+
#ifndef SB_SHA256_MQH
#define SB_SHA256_MQH

uint SB_SHA256_K[64] =
  {
   0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
   0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
   0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
   0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
   0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
   0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
   0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
   0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  };

uint SbRotr(const uint x, const int n)
  {
   return (x >> n) | (x << (32 - n));
  }

//--- digest[] receives the 32 bytes of SHA-256(data[])
void SbSha256(const uchar &data[], uchar &digest[])
  {
   uint h[8];
   h[0] = 0x6a09e667; h[1] = 0xbb67ae85; h[2] = 0x3c6ef372; h[3] = 0xa54ff53a;
   h[4] = 0x510e527f; h[5] = 0x9b05688c; h[6] = 0x1f83d9ab; h[7] = 0x5be0cd19;
   int length = ArraySize(data);
   int padded = ((length + 9 + 63) / 64) * 64;
   uchar block[];
   ArrayResize(block, padded);
   for(int i = 0; i < padded; i++)
      block[i] = (i < length) ? data[i] : 0;
   block[length] = 0x80;
   long bits = (long)length * 8;
   for(int i = 0; i < 8; i++)
      block[padded - 1 - i] = (uchar)((bits >> (8 * i)) & 0xff);
   uint w[64];
   for(int chunk = 0; chunk < padded; chunk += 64)
     {
      for(int t = 0; t < 16; t++)
         w[t] = ((uint)block[chunk + 4 * t] << 24) | ((uint)block[chunk + 4 * t + 1] << 16) |
                ((uint)block[chunk + 4 * t + 2] << 8) | (uint)block[chunk + 4 * t + 3];
      for(int t = 16; t < 64; t++)
        {
         uint s0 = SbRotr(w[t - 15], 7) ^ SbRotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
         uint s1 = SbRotr(w[t - 2], 17) ^ SbRotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
         w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
      uint a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
      for(int t = 0; t < 64; t++)
        {
         uint sum1 = SbRotr(e, 6) ^ SbRotr(e, 11) ^ SbRotr(e, 25);
         uint choice = (e & f) ^ ((~e) & g);
         uint temp1 = k + sum1 + choice + SB_SHA256_K[t] + w[t];
         uint sum0 = SbRotr(a, 2) ^ SbRotr(a, 13) ^ SbRotr(a, 22);
         uint majority = (a & b) ^ (a & c) ^ (b & c);
         uint temp2 = sum0 + majority;
         k = g; g = f; f = e; e = d + temp1;
         d = c; c = b; b = a; a = temp1 + temp2;
        }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d;
      h[4] += e; h[5] += f; h[6] += g; h[7] += k;
     }
   ArrayResize(digest, 32);
   for(int i = 0; i < 8; i++)
     {
      digest[4 * i] = (uchar)((h[i] >> 24) & 0xff);
      digest[4 * i + 1] = (uchar)((h[i] >> 16) & 0xff);
      digest[4 * i + 2] = (uchar)((h[i] >> 8) & 0xff);
      digest[4 * i + 3] = (uchar)(h[i] & 0xff);
     }
  }

//--- digest[] receives the 32 bytes of HMAC-SHA256(key[], message[])
void SbHmacSha256(const uchar &key[], const uchar &message[], uchar &digest[])
  {
   uchar block_key[];
   ArrayResize(block_key, 64);
   for(int i = 0; i < 64; i++)
      block_key[i] = 0;
   if(ArraySize(key) > 64)
     {
      uchar hashed[];
      SbSha256(key, hashed);
      for(int i = 0; i < 32; i++)
         block_key[i] = hashed[i];
     }
   else
      for(int i = 0; i < ArraySize(key); i++)
         block_key[i] = key[i];
   int length = ArraySize(message);
   uchar inner[];
   ArrayResize(inner, 64 + length);
   for(int i = 0; i < 64; i++)
      inner[i] = (uchar)(block_key[i] ^ 0x36);
   for(int i = 0; i < length; i++)
      inner[64 + i] = message[i];
   uchar inner_digest[];
   SbSha256(inner, inner_digest);
   uchar outer[];
   ArrayResize(outer, 96);
   for(int i = 0; i < 64; i++)
      outer[i] = (uchar)(block_key[i] ^ 0x5c);
   for(int i = 0; i < 32; i++)
      outer[64 + i] = inner_digest[i];
   SbSha256(outer, digest);
  }

//--- lowercase hex of bytes[]
string SbHex(const uchar &bytes[])
  {
   string digits = "0123456789abcdef";
   string out = "";
   for(int i = 0; i < ArraySize(bytes); i++)
      out += StringSubstr(digits, bytes[i] >> 4, 1) + StringSubstr(digits, bytes[i] & 0x0f, 1);
   return out;
  }

//--- the UTF-8 bytes of text, without a terminating zero
void SbUtf8(const string text, uchar &bytes[])
  {
   int count = StringToCharArray(text, bytes, 0, WHOLE_ARRAY, CP_UTF8);
   if(count > 0 && bytes[count - 1] == 0)
      count--;
   ArrayResize(bytes, count);
  }

string SbSha256Hex(const string text)
  {
   uchar bytes[];
   SbUtf8(text, bytes);
   uchar digest[];
   SbSha256(bytes, digest);
   return SbHex(digest);
  }

#endif
