"""Planning: a target balance and a budget turned into a plan of recipes, and its summaries."""
