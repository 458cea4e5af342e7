//+------------------------------------------------------------------+
//| SignalBridge/Volume.mqh                                          |
//| Lots the broker accepts: rounded down to the volume step, within  |
//| the symbol's minimum and maximum (as EarnForex's PositionSizer);  |
//| lots for a risk (section 5.2) and their split into legs.          |
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

//--- the lots that lose risk at the stop loss: loss per lot = |price - stop_loss| /
//--- tick_size * tick_value; rounded down to the step, then at most max_lots (0: none)
//--- and maximum (0: none). 0 when it cannot be computed (no tick data, no distance).
double SbRiskLots(const double risk, const double price, const double stop_loss, const double tick_size,
                  const double tick_value, const double step, const double max_lots, const double maximum)
  {
   double distance = MathAbs(price - stop_loss);
   if(risk <= 0 || tick_size <= 0 || tick_value <= 0 || distance <= 0 || price <= 0 || stop_loss <= 0)
      return 0;
   double loss_per_lot = distance / tick_size * tick_value;
   double lots = SbRoundDownToStep(risk / loss_per_lot, step);
   if(max_lots > 0 && lots > max_lots)
      lots = SbRoundDownToStep(max_lots, step);
   if(maximum > 0 && lots > maximum)
      lots = SbRoundDownToStep(maximum, step);
   return NormalizeDouble(lots, SbStepDigits(step));
  }

//--- the volume of each leg: volume x share rounded down to the step, what the rounding
//--- leaves to the first leg; while a leg would get less than the minimum, legs are dropped
//--- from the last and their share goes to the first. Returns how many legs are kept.
int SbLegVolumes(const double volume, const double &shares[], const double minimum, const double step, double &volumes[])
  {
   int count = ArraySize(shares);
   int digits = SbStepDigits(step);
   for(int kept = count; kept >= 1; kept--)
     {
      ArrayResize(volumes, kept);
      double others = 0;
      bool enough = true;
      for(int i = 1; i < kept; i++)
        {
         volumes[i] = SbRoundDownToStep(volume * shares[i], step);
         others += volumes[i];
         if(volumes[i] < minimum - 1e-12 || volumes[i] <= 0)
            enough = false;
        }
      volumes[0] = NormalizeDouble(volume - others, digits);
      if(volumes[0] < minimum - 1e-12 || volumes[0] <= 0)
         enough = false;
      if(enough || kept == 1)
        {
         if(kept == 1)
            volumes[0] = volume;
         return kept;
        }
     }
   ArrayResize(volumes, 0);
   return 0;
  }

#endif
