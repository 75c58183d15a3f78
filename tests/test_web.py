"""The web page in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright): upload, see names."""
from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.slow


def use_token(page, token: str) -> None:
    """Type the token into the one token control of the page's header."""
    page.click("#token-box summary")
    page.fill("#token", token)
    page.click("#token-save")


def test_upload_shows_names_and_people_tab_enrolls_and_forgets(browser, recognizer, enrolled, mien_home, demo_photos,
                                                               tmp_path):
    import re

    from playwright.sync_api import expect

    from mien.pipeline.app.server import BackgroundServer, ServerConfig, create_app
    from conftest import home_copy
    from test_server import TOKEN

    app = create_app(recognizer, ServerConfig(token=TOKEN, home=home_copy(mien_home, tmp_path / "home"),
                                              db_path=tmp_path / "web.db"))
    photo = sorted((demo_photos[1] / "madonna").iterdir())[0]
    new_photos = sorted((demo_photos[0] / "ben_afflek").iterdir())[:2]
    with BackgroundServer(app) as url:
        page = browser.new_page()
        page.set_default_timeout(60_000)
        page.goto(url + "/")
        assert page.title().startswith("mien")

        # Recognize tab: choosing a photo recognizes it; its card names the person, the photo shows with its box
        page.set_input_files("#photo", str(photo))
        page.wait_for_selector("#faces .face-card")
        assert page.locator("#faces .face-card .who").first.inner_text() == "madonna"
        assert re.match(r"1 face in .*: 1 named, 0 unknown$", page.inner_text("#recognize-status"))
        assert page.eval_on_selector("#photo-view", "img => img.complete && img.naturalWidth") > 0
        assert page.locator("#overlay rect.box").count() == 1

        # all 7 emotion scores of the face as bars
        assert page.locator("#faces .face-card .bars .bar").count() == 7

        # History tab: the recognition just made, asked with the token of the header's one token control
        page.click("#tab-history")
        use_token(page, TOKEN)
        page.wait_for_selector("#history-table tr.recognition")
        assert page.locator("#history-table tr.recognition td.who").first.inner_text() == "madonna"
        assert page.locator("#history-downloads a").count() == 2
        # and a chart per person of the emotions seen per day
        assert page.locator("#history-charts h3").all_inner_texts() == ["madonna: emotions seen per day"]
        assert page.eval_on_selector("#history-charts canvas", "c => c.width") > 0
        page.click("#tab-recognize")

        # a file that is not an image gives the server's message, not a broken page
        junk = tmp_path / "notes.txt"
        junk.write_text("not a photo")
        page.set_input_files("#photo", str(junk))
        page.wait_for_selector("#recognize-status.error")
        assert "notes.txt" in page.inner_text("#recognize-status")
        assert not page.is_visible("#result") and not page.is_visible("#faces")  # no stale result stays

        # People tab: the enrolled people with counts
        page.click("#tab-people")
        page.wait_for_selector("#people-list .person")
        names = page.locator("#people-list .person .name").all_inner_texts()
        assert names == ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]

        # adding photos needs the token
        page.fill("#person-name", "new_ben")
        page.set_input_files("#person-photos", [str(p) for p in new_photos])
        use_token(page, "wrong")
        page.click("#enroll-button")
        page.wait_for_selector("#enroll-status.error")
        assert "bearer token" in page.inner_text("#enroll-status")
        use_token(page, TOKEN)
        page.click("#enroll-button")
        # locator waits, not wait_for_function: the page's CSP (rightly) forbids evaluating strings in it
        expect(page.locator("#enroll-status")).to_have_text(re.compile(r"^enrolled new_ben"), timeout=120_000)
        page.wait_for_selector("#people-list .person:has-text('new_ben')")
        row = page.locator("#people-list .person", has_text="new_ben")
        assert row.locator(".count").inner_text() == "2 photos"

        # rename (the prompt answered), then forget (the confirmation accepted): the server follows each step
        page.on("dialog", lambda d: d.accept("ben_two") if d.type == "prompt" else d.accept())
        row.locator("button.rename").click()
        expect(page.locator("#people-status")).to_have_text("renamed new_ben to ben_two")
        row = page.locator("#people-list .person", has_text="ben_two")

        # faces: a thumbnail per person (with the token: faces are personal data) and per photo; one photo removed
        expect(row.locator("img.face").first).to_have_attribute("src", re.compile(r"^data:image/jpeg"), timeout=60_000)
        row.locator("button.show-photos").click()
        photos = row.locator(".photos .photo")
        expect(photos).to_have_count(2)
        for i in range(2):
            expect(photos.nth(i).locator("img.face")).to_have_attribute("src", re.compile(r"^data:image/jpeg"))
        photos.nth(0).locator("button", has_text="Remove").click()
        expect(page.locator("#people-status")).to_have_text("removed a photo of ben_two", timeout=60_000)
        row = page.locator("#people-list .person", has_text="ben_two")
        expect(row.locator(".count")).to_have_text("1 photo")
        row.locator("button", has_text="Forget").click()
        expect(page.locator("#people-list")).not_to_contain_text("ben_two", timeout=60_000)
        assert page.inner_text("#people-status") == "forgot ben_two"
        page.close()
    assert not {"new_ben", "ben_two"} & {p["name"] for p in app.state.mien.people()}
    from mien.identity.storage import content_hash
    from mien.pipeline.gallery import cache_model

    # erased with the person: the cached embeddings of the photos uploaded for them
    assert app.state.mien.gallery.cached([content_hash(p.read_bytes()) for p in new_photos], cache_model(recognizer)) == {}
    shutil.rmtree(tmp_path / "home", ignore_errors=True)


def block_non_loopback(page) -> list[str]:
    """Abort every request of ``page`` that leaves this machine; returns the list that collects the blocked URLs."""
    from urllib.parse import urlsplit

    blocked: list[str] = []

    def handle(route) -> None:
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", handle)
    return blocked


def test_api_docs_render_offline(browser, recognizer, tmp_path):
    """/docs (Swagger UI) and /redoc show the operations with every non-loopback request blocked."""
    from mien.pipeline.app.server import BackgroundServer, ServerConfig, create_app
    from test_server import TOKEN

    app = create_app(recognizer, ServerConfig(token=TOKEN, home=tmp_path / "home", db_path=tmp_path / "docs.db"))
    with BackgroundServer(app) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.set_default_timeout(60_000)
        blocked = block_non_loopback(page)
        page.goto(url + "/docs")
        recognize = page.locator(".opblock-summary-path", has_text="/recognize")
        recognize.wait_for(state="visible")
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert {"/recognize", "/people", "/people/{name}/photos", "/people/{name}", "/health"} <= set(paths)
        recognize.click()  # expand: the documented error statuses are listed
        page.locator(".opblock.is-open .responses-table td.response-col_status", has_text="415").wait_for()
        page.screenshot(path=tmp_path / "docs.png", full_page=True)
        assert blocked == []  # Swagger UI does not even try to leave the machine

        page.goto(url + "/redoc")
        page.get_by_text("/recognize", exact=True).first.wait_for(state="attached")
        assert page.locator("h2", has_text="Recognize").first.is_visible()
        page.screenshot(path=tmp_path / "redoc.png")
        page.close()
    # ReDoc always asks for its footer logo; offline it drops the image and keeps the text link
    assert set(blocked) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}, blocked


def write_y4m(path, frames_bgr, fps: int = 10) -> None:
    """A YUV4MPEG2 clip (what Chromium's fake camera plays, looping) from BGR frames of one size."""
    import cv2

    h, w = frames_bgr[0].shape[:2]
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames_bgr:
            fh.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())


def test_the_camera_tab_streams_a_live_camera_and_draws_each_persons_timeline(browser, recognizer, enrolled, mien_home,
                                                                              demo_photos, tmp_path):
    """Issue 22 item 2: Chromium's fake camera plays a clip of two demo people; the Camera tab streams it to
    /stream, names both with their emotions over the video, draws a timeline per person, and on Stop offers the
    summary as JSON and CSV."""
    import cv2
    import numpy as np
    from playwright.sync_api import expect

    from conftest import CHROMIUM, home_copy
    from mien.pipeline.app.server import BackgroundServer, ServerConfig, create_app
    from test_server import TOKEN
    from test_stream import letterboxed

    val = demo_photos[1]
    photos = [cv2.imdecode(np.frombuffer(letterboxed(sorted((val / p).iterdir())[0]), np.uint8), cv2.IMREAD_COLOR)
              for p in ("ben_afflek", "madonna")]
    clip = tmp_path / "camera.y4m"
    write_y4m(clip, [photos[0]] * 20 + [photos[1]] * 20)
    app = create_app(recognizer, ServerConfig(token=TOKEN, home=home_copy(mien_home, tmp_path / "home"),
                                              db_path=tmp_path / "camera.db"))
    with BackgroundServer(app) as url:
        # a second Chromium from the session's Playwright, whose camera is the clip (the flags are per process)
        camera = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={clip}"])
        try:
            page = camera.new_page(viewport={"width": 1000, "height": 1100})
            page.set_default_timeout(90_000)
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(url + "/")
            page.click("#tab-camera")
            legend = page.locator("#camera-legend span").all_text_contents()
            assert legend == list(recognizer.emotion_model.labels) and "contempt" not in legend  # the model's 7
            page.check("#camera-record")  # and keep the recording in the history
            page.click("#camera-start")
            for person in ("ben_afflek", "madonna"):
                expect(page.locator(f"#timelines .timeline[data-person='{person}']")).to_be_visible(timeout=90_000)
            expect(page.locator("#camera-status")).to_contain_text("face(s)")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(tmp_path / "camera.png"))
            share = page.locator("#timelines .timeline[data-person='madonna'] .share").inner_text()
            assert "%" in share
            page.click("#camera-stop")
            expect(page.locator("#camera-summary a")).to_have_count(2)
            assert page.locator("#camera-summary").inner_text().startswith("Summary:")
            expect(page.locator("#camera-status")).to_contain_text("kept in the history")
            [recording] = [r for r in app.state.mien.db.query() if r["source"] == "camera"]
            assert {f["identity"]["name"] for f in recording["faces"]} >= {"ben_afflek", "madonna"}
            assert not [e for e in errors if "Content Security Policy" in e], errors
        finally:
            camera.close()


def test_the_video_tab_processes_an_upload_and_plays_it_with_timelines(browser, recognizer, enrolled, mien_home,
                                                                       demo_photos, tmp_path):
    """Issue 22 item 3: upload a clip in the page, see progress, then the annotated video plays in the page (H.264)
    and each person's emotion timeline appears; issue 34 item 4: the video is then in the History tab."""
    import re

    from playwright.sync_api import expect

    from conftest import home_copy
    from mien.pipeline.app.server import BackgroundServer, ServerConfig, create_app
    from test_server import TOKEN
    from test_video import make_clip

    clip = make_clip(tmp_path / "clip.avi", demo_photos)
    app = create_app(recognizer, ServerConfig(token=TOKEN, home=home_copy(mien_home, tmp_path / "home"),
                                              db_path=tmp_path / "video.db"))
    with BackgroundServer(app) as url:
        page = browser.new_page(viewport={"width": 1000, "height": 1400})
        page.set_default_timeout(120_000)
        page.goto(url + "/")
        page.click("#tab-video")
        page.set_input_files("#video-file", str(clip))
        page.click("#video-button")
        expect(page.locator("#video-people .video-person")).to_have_count(2, timeout=120_000)
        assert page.locator("#video-people .video-person .person-name").all_inner_texts() == ["ben_afflek", "madonna"]
        shares = page.locator("#video-people .video-person .share").all_inner_texts()
        assert all(re.match(r"[12]\.\d s on screen; ", s) for s in shares), shares
        for _ in range(100):  # the page's CSP forbids wait_for_function's eval: poll the element instead
            if page.eval_on_selector("#video-player", "v => v.readyState") >= 2:
                break
            page.wait_for_timeout(200)
        assert page.eval_on_selector("#video-player", "v => v.videoWidth") == 640
        # one lane per person on one time axis, coloured by emotion; clicking a lane seeks the video there
        ben = page.locator("#video-people .video-person[data-person='ben_afflek'] svg")
        assert ben.locator("rect").count() >= 1
        box = ben.bounding_box()
        page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + box["height"] / 2)
        duration = page.eval_on_selector("#video-player", "v => v.duration")
        assert abs(page.eval_on_selector("#video-player", "v => v.currentTime") - 0.75 * duration) < 0.3
        href = page.get_attribute("#video-people .video-person[data-person='madonna'] a", "href")
        assert page.request.get(url + href).headers["content-type"] == "image/png"  # the PNG chart, one click away
        page.screenshot(path=str(tmp_path / "video.png"), full_page=True)
        expect(page.locator("#video-status")).to_contain_text("kept in the history")
        use_token(page, TOKEN)
        page.click("#tab-history")
        rows = page.locator("#history-table tbody tr.recognition")
        expect(rows).to_have_count(2)  # the clip, a row per person, as `mien video --db` stores it
        assert rows.locator("td.file").all_inner_texts() == ["clip.avi", "clip.avi"]
        assert sorted(rows.locator("td.who").all_inner_texts()) == ["ben_afflek", "madonna"]
        assert rows.locator("td[data-label=source]").all_inner_texts() == ["video", "video"]
        page.close()


def test_the_page_draws_all_8_emotions_of_a_ferplus_server(browser, recognizer, enrolled, mien_home, demo_photos,
                                                           tmp_path):
    """`mien serve --emotion-model ferplus` (issue 24): the Recognize tab shows every one of the model's 8 emotions
    as a bar."""
    from conftest import home_copy
    from test_emotion_ferplus import SHIPPED
    from test_server import TOKEN

    if not (SHIPPED / "model.json").is_file():
        pytest.skip(f"no FER+ model at {SHIPPED}")

    from mien.emotion.labels import FERPLUS_EMOTIONS
    from mien.pipeline import Recognizer
    from mien.pipeline.app.server import BackgroundServer, ServerConfig, create_app
    from mien.pipeline.options import Options

    rec = Recognizer(Options(emotion_model="ferplus"), detector=recognizer.detector, embedder=recognizer.embedder)
    app = create_app(rec, ServerConfig(token=TOKEN, home=home_copy(mien_home, tmp_path / "home")))
    photo = sorted((demo_photos[1] / "elton_john").iterdir())[0]
    with BackgroundServer(app) as url:
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(url + "/")
        page.set_input_files("#photo", str(photo))
        page.wait_for_selector("#faces .face-card")
        names = page.locator("#faces .face-card .bars .emo").all_text_contents()  # the folded ones too
        assert set(FERPLUS_EMOTIONS) <= set(names) and page.locator("#faces .face-card .bars .bar").count() == 8
        assert page.locator("#video-legend span").all_text_contents() == list(FERPLUS_EMOTIONS)  # contempt too
        page.screenshot(path=str(tmp_path / "ferplus.png"), full_page=True)
        page.close()
