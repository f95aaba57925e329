"""What a study is: the study file's model, its loader, the plan it expands to, and its view."""
