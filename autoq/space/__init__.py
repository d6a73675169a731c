"""Search spaces (no TensorFlow): the schema and sampling in :mod:`autoq.space.model`, loading
and validation with precise errors in :mod:`autoq.space.load`. Import from here."""
from autoq.config import FLOAT_LABEL, SHORTCUT_POLICIES
from autoq.objectives import CONSTRAINT_KEYS, FIT_KINDS
from autoq.objectives import COST_KINDS as OBJECTIVE_KINDS
from autoq.space.load import (check_targets, known_targets, load_space, parse_space, resolve_space_path,
                              shipped_input_shape)
from autoq.space.model import (DIMS, LAYER_TYPES, MAX_CHOICES, NAME_PATTERN, RULE_KEYS, TOP_KEYS, TRAINING_KEYS,
                               Choice, Rule, Screen, SearchSpace, config_hash)

__all__ = ["CONSTRAINT_KEYS", "DIMS", "FIT_KINDS", "FLOAT_LABEL", "LAYER_TYPES", "MAX_CHOICES", "NAME_PATTERN",
           "OBJECTIVE_KINDS", "RULE_KEYS", "SHORTCUT_POLICIES", "TOP_KEYS", "TRAINING_KEYS", "Choice", "Rule",
           "Screen", "SearchSpace", "check_targets", "config_hash", "known_targets", "load_space",
           "parse_space", "resolve_space_path", "shipped_input_shape"]
