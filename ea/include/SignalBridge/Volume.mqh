//+------------------------------------------------------------------+
//| SignalBridge/Volume.mqh                                          |
//| Lots the broker accepts: rounded down to the volume step, within  |
//| the symbol's minimum and maximum (as EarnForex's PositionSizer).  |
//+------------------------------------------------------------------+
#ifndef SB_VOLUME_MQH
#define SB_VOLUME_MQH

//--- decimals of a volume step: 0.01 -> 2, 0.1 -> 1, 1 -> 0
int SbStepDigits(const double step)
  {
   int digits = 0;
   double scaled = step;
   while(digits < 8 && MathAbs(scaled - MathRound(scaled)) > 1e-9)
     {
      digits++;
      scaled *= 10;
     }
   return digits;
  }

//--- volume rounded down to a whole number of steps (a hair of tolerance for 0.3/0.1)
double SbRoundDownToStep(const double volume, const double step)
  {
   if(step <= 0)
      return volume;
   double steps = MathFloor(volume / step + 1e-7);
   return NormalizeDouble(steps * step, SbStepDigits(step));
  }

//--- the volume to open for a requested volume; note says what changed (empty if nothing)
double SbOpenVolume(const double requested, const double minimum, const double step, const double maximum, string &note)
  {
   note = "";
   double volume = SbRoundDownToStep(requested, step);
   int digits = SbStepDigits(step);
   if(volume < minimum - 1e-12)
     {
      note = "volume " + DoubleToString(requested, 8) + " is below the symbol's minimum; opening the minimum " + DoubleToString(minimum, digits);
      volume = minimum;
     }
   else if(maximum > 0 && volume > maximum + 1e-12)
     {
      note = "volume " + DoubleToString(requested, 8) + " is above the symbol's maximum; opening the maximum " + DoubleToString(maximum, digits);
      volume = maximum;
     }
   else if(MathAbs(volume - requested) > 1e-9)
      note = "volume " + DoubleToString(requested, 8) + " rounded down to the volume step: " + DoubleToString(volume, digits);
   return NormalizeDouble(volume, digits);
  }

//--- the part of a position to close for fraction (0, 1]: fraction 1 (or a part that
//--- reaches the whole) closes all; 0 when the part rounds below the minimum
double SbCloseVolume(const double position_volume, const double fraction, const double minimum, const double step)
  {
   if(fraction >= 1)
      return position_volume;
   double part = SbRoundDownToStep(position_volume * fraction, step);
   if(part >= position_volume - 1e-12)
      return position_volume;
   if(part < minimum - 1e-12 || part <= 0)
      return 0;
   return part;
  }

#endif
