"""The report stage: summary table (summary), the design's statistics (design: correlation.tsv with
the hierarchical bootstrap; paired: paired_comparison.tsv), scatter plots (plots), and the
design-blind correlation helpers of before (stats).

Only numpy, pandas, scipy and matplotlib are needed (envs/report.yaml): no torch here.
"""
