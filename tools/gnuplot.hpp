// Drives gnuplot (Debian gnuplot-nox) as a child process: plots are written as gnuplot scripts with
// their data inline, as named data blocks, so one script is the whole plot and a failing one can
// be rerun by hand.
#pragma once

#include <string>
#include <vector>

namespace troupe {

// Rows of numbers; a row that is empty becomes a blank line, which gnuplot reads as the end of a
// scan line (heat maps) or a break in a line plot.
using GnuplotRows = std::vector<std::vector<double>>;

// `$name << EOD` … `EOD`: the rows as a gnuplot data block. NaN is written as "NaN" (a gap).
std::string gnuplot_datablock(const std::string& name, const GnuplotRows& rows);

// A string literal for gnuplot (single-quoted; titles are set `noenhanced` by the plots, so
// underscores in run names stay underscores).
std::string gnuplot_quote(const std::string& text);

// Runs `gnuplot` on `script`. Throws std::runtime_error with gnuplot's own error output (keeping
// the script in the temporary folder for a rerun) when it fails, and says how to install it when
// it is missing.
void run_gnuplot(const std::string& script);

}  // namespace troupe
