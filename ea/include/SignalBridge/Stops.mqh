//+------------------------------------------------------------------+
//| SignalBridge/Stops.mqh                                           |
//| Where breakeven and the trailing stop put a position's stop loss  |
//| (section 5.2): pure arithmetic on prices and points, never a move |
//| backwards. The engine applies the result on the broker's side.   |
//+------------------------------------------------------------------+
#ifndef SB_STOPS_MQH
#define SB_STOPS_MQH

//--- the stop loss at breakeven: the open price + offset points (buy; - for a sell); 0
//--- when the current stop loss is already there or beyond
double SbBreakevenStop(const bool buy, const double open_price, const double stop_loss, const int offset_points,
                       const double point, const int digits)
  {
   double half = point / 2;
   double target = NormalizeDouble(buy ? open_price + offset_points * point : open_price - offset_points * point, digits);
   if(buy && (stop_loss <= 0 || target > stop_loss + half))
      return target;
   if(!buy && (stop_loss <= 0 || target < stop_loss - half))
      return target;
   return 0;
  }

//--- the trailing stop: for a buy bid - distance once that lies above the stop loss by at
//--- least step points (mirrored with ask for a sell); 0 when the stop loss stays. No stop
//--- loss yet counts as one infinitely far away.
double SbTrailStop(const bool buy, const double bid, const double ask, const double stop_loss, const int distance_points,
                   const int step_points, const double point, const int digits)
  {
   double half = point / 2;
   double gain = step_points > 0 ? step_points * point : point;
   if(buy)
     {
      double level = NormalizeDouble(bid - distance_points * point, digits);
      if(level > 0 && (stop_loss <= 0 || level - stop_loss >= gain - half))
         return level;
      return 0;
     }
   double level = NormalizeDouble(ask + distance_points * point, digits);
   if(stop_loss <= 0 || stop_loss - level >= gain - half)
      return level;
   return 0;
  }

#endif
