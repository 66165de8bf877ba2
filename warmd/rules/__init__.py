"""Pure rule language: grammar, parser, compiler, diagnosis tree and prediction."""
