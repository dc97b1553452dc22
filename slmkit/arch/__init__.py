"""Models built from scratch: architecture presets (plain Llama configs), shape solving for a
parameter budget, random initialisation with a tokenizer, and the budget calculator of `slm size`."""
