// Package cgmcsv imports the CSV files CGM makers let patients download:
// the Dexcom Clarity export ([ParseDexcom]) and the LibreView export of
// FreeStyle Libre data ([ParseLibre]).
//
// Both are streamed row by row with encoding/csv, so memory stays bounded
// however long the file is (a row longer than 1 MiB is refused). A UTF-8
// byte order mark is dropped, UTF-16 with a byte order mark (older
// LibreView exports) is decoded, a cell that is not UTF-8 is read as
// Latin-1, and the delimiter is taken from the header row: a comma, or the
// semicolon or tab a spreadsheet writes when it re-saves the file in some
// locales.
//
// Every glucose reading becomes one omh:blood-glucose:4.0 point, built as
// IEEE 1752 header JSON and run through omh.Parse:
//
//	Dexcom EGV            interstitial fluid, sensed
//	Dexcom Calibration    capillary blood, self-reported (a meter value the user entered)
//	LibreView type 0, 1   interstitial fluid, sensed (historic and scanned sensor glucose)
//	LibreView type 2      capillary blood, sensed (a test strip in the Libre reader)
//
// Everything else (insulin, carbohydrates, events, the export's metadata
// rows, readings outside the sensor's range that carry "Low" or "High"
// instead of a number) goes to the sink's Skipped with a reason. The title
// and metadata rows name the patient; they are never copied anywhere, not
// even into an error or a skip reason.
//
// Neither format has a reading id (Clarity's Index and Transmitter ID
// change from one export to the next), so no point has a uuid: the vault
// derives one from the point's content, which depends only on the row, and
// importing the same readings twice stores nothing new.
//
// Timestamps carry no offset and are read in the patient's zone,
// ingest.Options.Location. The mapping and its reasons are in
// docs/importers/dexcom-clarity.md and docs/importers/libreview.md.
package cgmcsv
