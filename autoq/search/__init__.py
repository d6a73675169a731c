"""The search: one trial's pipeline (objective), the study and budget (study), the dispatcher and
its backends (runner; local, ray_backend; recording) and the live progress display (progress)."""
from autoq.search.objective import TrainOutcome, TrialContext, TrialOutcome, run_trial
from autoq.search.options import SearchOptions
from autoq.search.runner import SearchResult, run_search
from autoq.search.study import Budget, parse_budget

__all__ = ["Budget", "SearchOptions", "SearchResult", "TrainOutcome", "TrialContext", "TrialOutcome",
           "parse_budget", "run_search", "run_trial"]
