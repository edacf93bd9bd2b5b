"""The real data sets' loaders on tiny committed fixtures (tests/fixtures/data, made by
make_fixtures.py there), and the arithmetic they rely on, against hand-worked numbers."""

from __future__ import annotations

import json

import pytest
import torch

from bench.data import (
    DeviceBatches,
    data_mode,
    input_wait_pct,
    make_loader,
)
from bench.data.carvana import CarvanaDataset, mask_to_classes, pair_carvana
from bench.data.image_ops import (
    center_crop_box,
    eval_crop,
    random_resized_crop_box,
    resized_short_side,
)
from bench.data.imagefolder import ImageFolderDataset, scan_image_folder
from bench.data.poems import EOP, START, UNK, CharVocab, PoemWindows, read_poems
from bench.data.squad import (
    SquadDataset,
    answer_token_span,
    featurize,
    read_qa_json,
    window_starts,
)
from bench.data.tokenizer import (
    FIRST_HASHED_ID,
    HashingTokenizer,
    hashed_id,
    load_tokenizer,
)
from bench.errors import UserError
from tests.conftest import FIXTURES

DATA = FIXTURES / "data"


# -- data modes and the pipeline ---------------------------------------------------------
def test_data_path_implies_loader_mode():
    assert data_mode({"data": "synthetic", "data_path": None}, "w") == "synthetic"
    assert data_mode({"data": "loader", "data_path": None}, "w") == "loader"
    assert data_mode({"data": "synthetic", "data_path": "/x"}, "w") == "loader"


def test_input_wait_pct_hand_worked():
    assert input_wait_pct([0.1, 0.2], 1.0) == pytest.approx(30.0)
    assert input_wait_pct([], 0.0) == 0.0


def test_device_batches_cycle_epochs_and_time_each_wait():
    ds = torch.utils.data.TensorDataset(torch.arange(5))
    loader = make_loader(ds, 2, shuffle=True, num_workers=0, seed=0, pin_memory=False,
                         workload="w")
    batches = DeviceBatches(loader, torch.device("cpu"))
    got = [next(batches)[0] for _ in range(3)]
    assert all(b.shape == (2,) for b in got)  # drop_last: never a short batch
    assert batches.epochs == 1  # 5 samples = 2 full batches per epoch
    assert len(batches.wait_s) == 3 and all(w >= 0 for w in batches.wait_s)


def test_loader_refuses_a_data_set_smaller_than_a_batch():
    ds = torch.utils.data.TensorDataset(torch.arange(3))
    with pytest.raises(UserError, match=r"3 sample.*fewer than batch_size=4"):
        make_loader(ds, 4, shuffle=False, num_workers=0, seed=0, pin_memory=False,
                    workload="w")


# -- image crops ----------------------------------------------------------------------------
def test_center_crop_and_short_side_hand_worked():
    assert center_crop_box(20, 16, 8) == (6, 4, 14, 12)
    assert resized_short_side(20, 16, 8) == (10, 8)
    assert resized_short_side(16, 24, 8) == (8, 12)


def test_random_resized_crop_stays_inside_the_image():
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        left, top, right, bottom = random_resized_crop_box(40, 30, gen)
        assert 0 <= left < right <= 40 and 0 <= top < bottom <= 30


# -- ImageFolder -------------------------------------------------------------------------------
def test_imagefolder_scans_sorted_classes_and_skips_non_images():
    classes, samples = scan_image_folder(DATA / "imagefolder")
    assert classes == ["n01440764", "n01443537"]
    assert [label for _, label in samples] == [0, 0, 1, 1]
    assert all(p.suffix.lower() in (".jpeg", ".jpg", ".png") for p, _ in samples)


@pytest.mark.parametrize("train", [True, False])
def test_imagefolder_items_are_uint8_crops_of_the_requested_size(train):
    ds = ImageFolderDataset(DATA / "imagefolder", 8, train=train, num_classes=100)
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.shape == (3, 8, 8) and image.dtype == torch.uint8
        assert label in (0, 1)


def test_eval_crop_of_a_gradient_keeps_the_centre():
    from PIL import Image

    img = Image.open(DATA / "imagefolder" / "n01440764" / "n01440764_1.JPEG").convert("RGB")
    assert eval_crop(img, 8).size == (8, 8)


def test_imagefolder_with_more_classes_than_the_model_is_refused():
    with pytest.raises(UserError, match="2 classes, more than the model's num_classes=1"):
        ImageFolderDataset(DATA / "imagefolder", 8, train=False, num_classes=1)


def test_imagefolder_without_class_directories_is_refused(tmp_path):
    with pytest.raises(UserError, match="no class sub-directories"):
        scan_image_folder(tmp_path)


# -- Carvana ------------------------------------------------------------------------------------
def test_carvana_pairs_images_with_their_gif_masks():
    pairs = pair_carvana(DATA / "carvana")
    assert [(i.name, m.name) for i, m in pairs] == [
        ("0cdf5b5d0ce1_01.jpg", "0cdf5b5d0ce1_01_mask.gif"),
        ("0cdf5b5d0ce1_02.jpg", "0cdf5b5d0ce1_02_mask.gif"),
        ("fff9b3a5373f_01.jpg", "fff9b3a5373f_01_mask.gif"),
    ]


def test_carvana_masks_are_binary_classes_for_palette_and_grey_gifs():
    ds = CarvanaDataset(DATA / "carvana", height=16, width=24)
    for i in range(len(ds)):
        image, mask = ds[i]
        assert image.shape == (3, 16, 24) and image.dtype == torch.uint8
        assert mask.shape == (16, 24) and mask.dtype == torch.int64
        # make_fixtures.py paints an 8 x 12 car in every mask
        assert int(mask.sum()) == 96 and set(mask.unique().tolist()) == {0, 1}


def test_carvana_resizes_masks_with_nearest_neighbour():
    _, mask = CarvanaDataset(DATA / "carvana", height=8, width=12)[0]
    assert mask.shape == (8, 12) and set(mask.unique().tolist()) == {0, 1}


def test_mask_to_classes_any_non_zero_channel():
    import numpy as np

    rgb = np.array([[[0, 0, 0], [0, 9, 0]]], dtype=np.uint8)
    assert mask_to_classes(rgb).tolist() == [[0, 1]]


def test_carvana_image_without_mask_is_named(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train_masks").mkdir()
    (tmp_path / "train" / "abc_01.jpg").write_bytes(
        (DATA / "carvana" / "train" / "0cdf5b5d0ce1_01.jpg").read_bytes())
    with pytest.raises(UserError, match=r"abc_01\.jpg.*abc_01_mask\.gif"):
        pair_carvana(tmp_path)


def test_carvana_without_train_masks_directory_is_refused(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(UserError, match="no train_masks/ directory"):
        pair_carvana(tmp_path)


# -- tokenisers -----------------------------------------------------------------------------------
def test_hashing_tokenizer_is_stable_and_keeps_offsets():
    # Pinned: a change of the hash would silently change every tokenised data set.
    assert hashed_id("Normans", 28996) == 9346
    tok = HashingTokenizer(28996)
    ids, offsets = tok.encode("李白 said: Normans!")
    text = "李白 said: Normans!"
    assert [text[s:e] for s, e in offsets] == ["李", "白", "said", ":", "Normans", "!"]
    assert all(FIRST_HASHED_ID <= i < 28996 for i in ids)
    assert HashingTokenizer(30522, lowercase=True).encode("Normans")[0] == [hashed_id(
        "normans", 30522)]


def test_local_tokenizer_directory_is_loaded_without_a_hub():
    tok = load_tokenizer(str(DATA / "tokenizer"), 28996, lowercase=False)
    vocab = (DATA / "tokenizer" / "vocab.txt").read_text(encoding="utf-8").split()
    ids, offsets = tok.encode("The Normans were in France.")
    assert [vocab[i] for i in ids] == ["the", "normans", "were", "in", "france", "."]
    assert offsets[1] == (4, 11)
    assert (tok.cls_id, tok.sep_id, tok.pad_id) == (2, 3, 0)


def test_tokenizer_larger_than_the_model_vocabulary_is_refused():
    with pytest.raises(UserError, match="more than the model's vocabulary of 10"):
        load_tokenizer(str(DATA / "tokenizer"), 10, lowercase=False)


def test_tokenizer_path_that_is_no_directory_is_refused(tmp_path):
    with pytest.raises(UserError, match="is not a directory"):
        load_tokenizer(str(tmp_path / "nope"), 28996, lowercase=False)


# -- SQuAD / CMRC2018 -----------------------------------------------------------------------------
def test_window_starts_hand_worked():
    assert window_starts(10, 4, 2) == [0, 2, 4, 6]
    assert window_starts(3, 4, 2) == [0]
    assert window_starts(9, 4, 8) == [0, 4, 8]  # a stride beyond the window is capped


def test_answer_token_span_hand_worked():
    offsets = [(0, 3), (4, 11), (12, 16), (17, 23)]
    assert answer_token_span(offsets, 4, 16) == (1, 2)
    assert answer_token_span(offsets, 5, 6) == (1, 1)
    assert answer_token_span(offsets, 30, 35) is None


def test_squad_v2_features_point_at_the_answer_tokens():
    tok = load_tokenizer(str(DATA / "tokenizer"), 28996, lowercase=False)
    vocab = (DATA / "tokenizer" / "vocab.txt").read_text(encoding="utf-8").split()
    fmt, examples = read_qa_json(DATA / "squad" / "squad_v2_tiny.json")
    assert fmt == "squad-v2.0" and len(examples) == 4
    first = featurize(examples[0], tok, seq_len=64, doc_stride=16, max_query_len=16)
    assert len(first) == 1
    f = first[0]
    assert len(f.input_ids) == len(f.token_type_ids) == len(f.attention_mask) == 64
    assert vocab[f.input_ids[f.start_position]] == "france"
    assert f.start_position == f.end_position
    assert f.input_ids[0] == tok.cls_id and f.token_type_ids[f.start_position] == 1
    span = featurize(examples[1], tok, 64, 16, 16)[0]
    assert [vocab[i] for i in span.input_ids[span.start_position:span.end_position + 1]] == \
        ["10th", "and", "11th", "centuries"]
    impossible = featurize(examples[2], tok, 64, 16, 16)
    assert all((x.start_position, x.end_position) == (0, 0) for x in impossible)


def test_long_context_is_cut_into_strided_windows_with_the_answer_in_one():
    tok = HashingTokenizer(28996)
    _, examples = read_qa_json(DATA / "squad" / "squad_v2_tiny.json")
    feats = featurize(examples[3], tok, seq_len=32, doc_stride=8, max_query_len=16)
    assert len(feats) > 1
    answered = [f for f in feats if f.start_position > 0]
    assert answered and all(f.input_ids[f.start_position] == hashed_id("1204", 28996)
                            for f in answered)


def test_cmrc2018_chinese_answers_map_to_character_tokens():
    tok = HashingTokenizer(28996)
    ds = SquadDataset(DATA / "cmrc" / "cmrc2018_tiny.json", tok, seq_len=48, doc_stride=16,
                      max_query_len=16)
    assert ds.describe()["format"] == "squad-v1/cmrc2018"
    item = ds[0]
    s, e = int(item["start_positions"]), int(item["end_positions"])
    assert item["input_ids"][s:e + 1].tolist() == [hashed_id("诗", 28996),
                                                    hashed_id("仙", 28996)]
    assert ds.answerable == 2


def test_malformed_qa_json_names_the_json_path(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"paragraphs": [{"context": "x", "qas": [
        {"question": "q", "answers": [{"text": "y", "answer_start": 99}]}]}]}]}))
    with pytest.raises(UserError, match=r"\$\.data\[0\]\.paragraphs\[0\]\.qas\[0\]\.answers"):
        read_qa_json(bad)
    (tmp_path / "notjson.json").write_text("{")
    with pytest.raises(UserError, match="not readable JSON"):
        read_qa_json(tmp_path / "notjson.json")


# -- Poem-Tang -----------------------------------------------------------------------------
def test_poem_vocabulary_by_frequency_then_code_point():
    poems = read_poems(DATA / "poems")
    assert len(poems) == 3
    vocab = CharVocab.build(poems, 10)
    # "，" and "。" appear 6 times each, 上 处 头 明 月 twice: 4 specials + 6 characters.
    assert vocab.chars == ["<pad>", "<unk>", "<start>", "<eop>", "。", "，", "上", "处", "头",
                           "明"]
    ids = vocab.encode("明月")
    assert ids == [START, 9, UNK, EOP]
    assert vocab.decode(ids) == "明?"


def test_poem_windows_predict_the_next_character():
    ds = PoemWindows(DATA / "poems", seq_len=8, vocab_size=4845)
    # 3 poems x (24 characters + <start> + <eop>) = 78 ids -> (78 - 1) // 8 windows
    assert ds.describe()["characters"] == 78 and len(ds) == 9
    inputs, targets = ds[1]
    assert inputs.shape == targets.shape == (8,)
    assert torch.equal(inputs[1:], targets[:-1])
    assert ds.describe()["unknown_chars"] == 0


def test_poems_in_paragraphs_layout_and_json_lines(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(
        [{"title": "t", "paragraphs": ["床前明月光，", "疑是地上霜。"]}], ensure_ascii=False),
        encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(
        '{"content": "春眠不觉晓"}\n\n{"content": "处处闻啼鸟"}\n', encoding="utf-8")
    assert read_poems(tmp_path) == ["床前明月光，疑是地上霜。", "春眠不觉晓", "处处闻啼鸟"]


def test_poem_without_text_is_refused_with_its_location(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps([{"title": "t", "content": 3}]))
    with pytest.raises(UserError, match=r"p.json at \$\[0\]"):
        read_poems(tmp_path / "p.json")
