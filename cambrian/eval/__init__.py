"""Evaluation: answer matching, benchmark scoring, and (later) the batched benchmark runner."""
