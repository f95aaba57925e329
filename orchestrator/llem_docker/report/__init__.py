"""`llem-docker report`: statistics per study point across cycles, tables and plots."""
