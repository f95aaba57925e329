"""The capacity search (`serving.search`): the highest request rate that meets the SLO."""
