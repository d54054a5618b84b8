"""torch.distributions: probability distributions with sampling, log_prob and entropy, built from
gradc ops so they differentiate (reparameterised samples and score-function estimators)."""
