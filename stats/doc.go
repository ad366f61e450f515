// Package stats computes the figures the vault shows and reports about a
// patient's readings: the CGM summary (time in ranges, mean glucose, GMI,
// CV, sensor activity), glucose by local day and by hour of day, hourly
// means of heart rate and daily step totals. It reads values out of
// decrypted readings with one parser, and knows nothing of storage, HTTP
// or pages: the web dashboard and the AGP report (package report) call it.
//
// # Reading values
//
// A decrypted reading is the canonical JSON of an Open mHealth point (what
// omh's AppendJSON writes and the vault stores). [UnitValue] returns the
// unit-value {"value": …, "unit": …} under a key of its body: straight
// from the bytes when the reading is in the canonical form, by a JSON
// decode otherwise; a missing key, a value that is not a finite number or
// a document that is not JSON gives false. [GlucoseMgDL], [HeartRate] and
// [Steps] are the series the dashboard reads, built on it.
//
// # Units
//
// Glucose is computed in mg/dL throughout. A reading in mmol/L is
// converted at [MgDLPerMmolL] = 18.0156 mg/dL per mmol/L (the molar mass of
// glucose, 180.156 g/mol, over 10); any other unit is not a glucose value.
// Heart rate is in beats/min and steps in steps, as omh requires.
//
// # The CGM summary
//
// [SummarizeCGM] follows the HL7 CGM implementation guide
// (hl7.fhir.uv.cgm) and the international consensus on time in range
// (Battelino et al., Diabetes Care 2019) that it builds on. Over the
// readings of a reporting period (the dashboard's is [CGMDays] = 14 days):
//
//   - times in ranges (LOINC 106793-3 and its components) are the shares
//     of readings, in percent, in five bands:
//     very low < 54 mg/dL, low 54–69, target 70–180, high 181–250,
//     very high > 250. As real numbers, a reading between the integers
//     falls in the lower band: < 54, [54, 70), [70, 180], (180, 250],
//     > 250; so 54 is low, 69.5 is low, 70 and 180 are in the target
//     range, 180.5 and 250 are high, 250.5 is very high ([RangeOf]). The
//     five shares sum to 100 (up to rounding of the floating point);
//   - mean glucose (LOINC 97507-8) is the arithmetic mean, in mg/dL;
//   - GMI, the glucose management indicator (LOINC 97506-0), in percent,
//     is 3.31 + 0.02392 × mean glucose in mg/dL (Bergenstal et al.,
//     Diabetes Care 2018);
//   - CV, the coefficient of variation, in percent, is 100 × SD / mean,
//     where SD is the sample standard deviation (divided by n − 1; zero
//     for a single reading) in mg/dL;
//   - sensor activity, in percent, is the number of readings times the
//     sensor's usual interval (the median gap between readings, held
//     between 1 and 15 minutes; 5 minutes with fewer than three readings)
//     over the period, at most 100. Below [MinActiveShare] (70%, the
//     consensus's minimum for 14 days) the summary is not sufficient.
//
// # Days and hours
//
// Daily figures count in the patient's local days in her IANA time zone,
// as package internal/calendar defines them (a day can last 23 or 25 hours,
// and in a few zones starts at 01:00). [DailyGlucose] gives each day's
// number of readings, mean and share in the target range; [DailyTotals]
// adds up a series (steps) by the day each reading's time falls on.
// [HourlyMeans] averages a series (heart rate) by clock hour in the local
// zone, so in a zone half an hour off UTC an hour runs from :00 to :00
// local, and the repeated hour of an autumn clock change is two hours.
// [ByHourOfDay] pools readings by hour of the local day (0–23) across days
// and gives percentiles, the ambulatory glucose profile's building block;
// [Percentile] interpolates linearly between closest ranks (the method of
// R's quantile type 7 and NumPy's default).
//
// # The ambulatory glucose profile
//
// [NewAGP] computes the AGP of the international consensus report
// (Battelino et al., Diabetes Care 2019) over a period [from, to): the
// CGM summary above over the period's readings (sensor activity over the
// part of the period that could be read, which on a clinician's page is
// what the grants cover), the modal day and the daily profiles.
//
// The modal day pools the readings into fixed bins of the local clock,
// [AGPBinWidth] = 15 minutes wide from midnight (96 bins; [ByTimeOfDay],
// of which ByHourOfDay is the one-hour case). A reading goes to the bin
// of its wall-clock hour and minute in the patient's zone, whatever day
// it was taken on; each bin gets the 5th, 25th, 50th, 75th and 95th
// percentiles of its readings by [Percentile] (indexes [P5] to [P95]).
// Nothing is smoothed: neither the values nor the bins are averaged with
// their neighbours, so a bin's band is exactly its readings' percentiles,
// and a bin without readings has none (the report breaks its bands
// there). With 14 days of 5-minute readings a bin holds about 42.
//
// The daily profiles ([SplitDays]) are each local day's readings, for
// every day the period touches, a day without readings included; the AGP
// keeps the newest [AGPMaxDailyProfiles] = 14.
//
// Every function takes the readings in time order, as the vault returns
// them, and leaves its input unchanged.
package stats
