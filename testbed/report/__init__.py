"""Reports over result documents: Markdown and self-contained HTML."""

from testbed.report.build import ReportInputs, load_results, write_report

__all__ = ["ReportInputs", "load_results", "write_report"]
