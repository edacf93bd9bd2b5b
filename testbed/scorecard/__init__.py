"""The large-model scorecard against the evaluation template's A100 baseline
(docs/scorecard.md): settings (bench/specs/scorecard.yaml), arithmetic (``formulas``), the
scorecard built from results (``build``) and its report section (``render``)."""
