"""The fixtures' spelling of non-finite numbers (JSON has none): 'nan', 'inf'
and '-inf' beside plain numbers; test/golden/encoded_values.ts reads it."""
import math


def enc(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def values(t):
    """A tensor's values, flattened in its logical order, encoded."""
    return [enc(v) for v in t.detach().double().contiguous().reshape(-1).tolist()]
