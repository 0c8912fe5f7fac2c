"""Cards: the dataset card of a KARMA set and the provenance section of a trained model's card."""
