"""Jobs and pairs: long work followed through the workspace DB (`records`), the generate job that
makes pairs (`generate`), the pairs and their review (`pairs`), pairs painted by hand (`manual`)."""
