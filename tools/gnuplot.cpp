// Running gnuplot: the script and gnuplot's standard error go to temporary files; the errors become
// the exception's text when the exit status says it failed.
#include "tools/gnuplot.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace troupe {

std::string gnuplot_datablock(const std::string& name, const GnuplotRows& rows) {
  std::ostringstream out;
  out.precision(9);
  out << '$' << name << " << EOD\n";
  for (const auto& row : rows) {
    const char* separator = "";
    for (double v : row) {
      out << separator;
      if (std::isnan(v))
        out << "NaN";
      else
        out << v;
      separator = " ";
    }
    out << '\n';
  }
  out << "EOD\n";
  return out.str();
}

std::string gnuplot_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'')
      out += "''";  // gnuplot's escape inside single quotes
    else if (c != '\n')
      out += c;
  }
  return out + "'";
}

void run_gnuplot(const std::string& script) {
  // A script file rather than a pipe: writing into a pipe whose reader is gone (no gnuplot
  // installed, or one that stopped at an error) would raise SIGPIPE in the training process.
  std::string script_path =
      (std::filesystem::temp_directory_path() / "troupe-plot-XXXXXX").string();
  const int fd = mkstemp(script_path.data());
  if (fd < 0) throw std::runtime_error("run_gnuplot: cannot create a temporary file");
  close(fd);
  const std::string errors_path = script_path + ".err";
  {
    std::ofstream out(script_path, std::ios::binary);
    out << script;
    if (!out) throw std::runtime_error("run_gnuplot: cannot write " + script_path);
  }
  const int status = std::system(("gnuplot '" + script_path + "' 2>'" + errors_path + "'").c_str());
  std::ifstream in(errors_path);
  const std::string errors{std::istreambuf_iterator<char>(in), {}};
  std::filesystem::remove(errors_path);
  if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    std::filesystem::remove(script_path);
    return;
  }
  if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    std::filesystem::remove(script_path);
    throw std::runtime_error(
        "run_gnuplot: gnuplot was not found; install it (Debian: apt-get install gnuplot-nox, "
        "or run tools/setup.sh)");
  }
  throw std::runtime_error("run_gnuplot: gnuplot failed on " + script_path +
                           " (kept for a rerun): " + errors);
}

}  // namespace troupe
