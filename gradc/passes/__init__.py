"""Graph passes, named as verbs: differentiate, simplify (dce, cse, fold, identities), schedule."""
