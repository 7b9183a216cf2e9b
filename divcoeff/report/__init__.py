"""The report stage: summary table (summary), scatter plots (plots), correlation statistics (stats).

Only numpy, pandas, scipy and matplotlib are needed (envs/report.yaml): no torch here.
"""
