"""Graph passes, each a function over a gradc.ir.Graph that returns what it found or decided:
autodiff (differentiate), simplify (dce, cse, fold, identities), recompute (choose_saved), split,
fusion (fuse), schedule, liveness and memory (plan_memory). gradc.lower runs them in order."""
