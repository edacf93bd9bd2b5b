"""Reports over result documents: plausibility checks, aggregation, composite and
baseline-relative scores, charts; written as self-contained HTML, Markdown and CSV."""

from testbed.report.build import ReportFiles, write_report
from testbed.report.inputs import ResultSet, load_results

__all__ = ["ReportFiles", "ResultSet", "load_results", "write_report"]
