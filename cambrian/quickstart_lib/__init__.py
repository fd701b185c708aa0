"""The parts of `cambrian quickstart`: the embedded model (model.py), its data (data.py, self_chat.py), a
time-budgeted two-stage trainer (train.py), evaluation with baselines (evaluate.py) and the report (report.py)."""
