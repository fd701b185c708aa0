"""Instruction data: records, chat templates and label masks, datasets, sampler, collator, validation, curation."""
