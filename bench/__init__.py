"""Side-by-side benchmark: mailfilter against bogofilter and crm114.

Run `python -m bench --help`. Results go to bench/results/REPORT.md.
"""
