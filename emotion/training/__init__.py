"""Training the emotion network: FER2013 data, augmentation, the resumable trainer, export and evaluation."""
