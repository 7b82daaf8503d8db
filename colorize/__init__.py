"""Guo's residual-encoder colouriser (paper sec. 4.1): model, loss, training, SavedModel export."""
