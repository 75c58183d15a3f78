"""Network architectures both branches build on (identity may not import emotion, nor the reverse).

FaceNet's input size and embedding width live here, free of TensorFlow, for every runtime of the network."""

FACENET_INPUT_SIZE = 160
FACENET_EMBEDDING_DIM = 128
