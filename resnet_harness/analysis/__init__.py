"""Analysis: statistics over seeds, comparisons, claims, bounds, verdicts and baselines, computed
from stored rows; the declarations they evaluate come from the studies' registry."""
