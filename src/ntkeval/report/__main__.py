"""python -m ntkeval.report <sweep dir>: the same as ntkeval-report."""

from ntkeval.report.sweep_report import main

main()
