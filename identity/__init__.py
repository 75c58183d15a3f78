"""Who is this face: FaceNet embeddings, an embeddings cache, and an open-set linear-SVM classifier."""
from identity.classifier import UNKNOWN, IdentityClassifier, IdentityMatch, Thresholds
from identity.errors import IdentityError, ModelFileError, NotEnrolledError, StaleModelError

__all__ = ["UNKNOWN", "IdentityClassifier", "IdentityMatch", "Thresholds", "IdentityError", "ModelFileError",
           "NotEnrolledError", "StaleModelError"]
