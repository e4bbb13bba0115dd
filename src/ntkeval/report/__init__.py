"""Reading a sweep back from disk: kernel tables, heatmaps, structure statistics, seed pooling and the sweep grid.
Run it as `ntkeval-report <sweep dir>` (ntkeval.report.sweep_report)."""
