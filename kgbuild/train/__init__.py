"""Measure extraction on your labels, and fine-tune the model on them.

Modules, in the order the data flows: ``gold`` (labelled examples in gliner2's JSONL format, checked against a
schema), ``convert`` (Label Studio, doccano, CoNLL BIO and Re-DocRED files into that format), ``export`` (what
an index extracted, in that format), ``metrics`` (P/R/F1 and the commonest errors), ``evaluate`` (``kgbuild
eval``), ``finetune`` (``kgbuild train``: full or LoRA on gliner2's trainer).
"""

from kgbuild.train.evaluate import EvalReport, evaluate
from kgbuild.train.gold import GoldDataError, GoldExample, load_gold

__all__ = ["EvalReport", "GoldDataError", "GoldExample", "evaluate", "load_gold"]
