//! A stand-in IP camera for tests and benchmarks: serves H.264 files over RTSP in real
//! time, without re-encoding (as a real camera sends what it encoded).
//!
//! Usage: `rtsp_camera PORT MOUNT=FILE.mp4 [MOUNT=FILE.mp4 ...]`
//! e.g. `rtsp_camera 8554 cam1=judge.mp4 cam1-preview=judge-360p.mp4`
//! serves rtsp://127.0.0.1:8554/cam1 and rtsp://127.0.0.1:8554/cam1-preview.
//! The files must be MP4 with H.264 without B-frames. Stop it to "unplug" the cameras.

use gstreamer as gst;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: rtsp_camera PORT MOUNT=FILE.mp4 [MOUNT=FILE.mp4 ...]");
        std::process::exit(2);
    }
    gst::init().expect("GStreamer");
    let main_loop = gst::glib::MainLoop::new(None, false);
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&args[0]);
    let mounts = server.mount_points().expect("mount points");
    for spec in &args[1..] {
        let Some((mount, file)) = spec.split_once('=') else {
            eprintln!("bad mount spec {spec}: want MOUNT=FILE");
            std::process::exit(2);
        };
        let factory = rtsp::RTSPMediaFactory::new();
        // Each client gets its own stream of the file, as a camera encodes for each
        // of its streams. (Shared among clients, a client reconnecting while another
        // joined was once left without a picture for two tries running.) The file
        // plays once; at its end clients get end-of-stream (make it as long as the test).
        factory.set_launch(&format!(
            "( filesrc location=\"{file}\" ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        ));
        factory.set_shared(false);
        mounts.add_factory(&format!("/{mount}"), factory);
        println!("rtsp://127.0.0.1:{}/{mount} <- {file}", args[0]);
    }
    let _id = server.attach(None).expect("attach RTSP server");
    main_loop.run();
}
