"""Data for the workloads: synthetic inputs with the real data sets' shapes and statistics, and
loaders for the real formats when the user gives a local path (nothing is ever downloaded)."""
