"""Host-side orchestration and reporting (invoke tasks, images, reports).

The in-container package ``bench`` never imports this one.
"""
