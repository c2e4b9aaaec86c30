# nooelint: oelint.var.bbclassextend - a gateway service: no -native or nativesdk variant makes sense
SUMMARY = "Video recorder for edge gateways"
DESCRIPTION = "edgerec records RTSP cameras continuously into crash-safe fragmented-MP4 \
               segments on local storage, indexed in SQLite and kept under a size limit."
# nooelint: oelint.vars.homepageping - the project's public address is set when it is published
HOMEPAGE = "https://github.com/edgerec/edgerec"
BUGTRACKER = "https://github.com/edgerec/edgerec/issues"
SECTION = "multimedia"
# LICENSE is set in edgerec-licenses.inc (required below), generated from the crates the binary
# links (yocto/gen-license-inc.py; CI checks it is current). edgerec itself is MIT; the statically
# linked fMP4 muxer (gst-plugin-fmp4) is MPL-2.0.
LIC_FILES_CHKSUM = "file://docs/LICENSE;md5=c4b8f13d4f3155d9c2d0372abc6aabf9 \
                    file://${COMMON_LICENSE_DIR}/MPL-2.0;md5=815ca599c9df247a0c7f619bab123dad"

CVE_PRODUCT = "edgerec"

DEPENDS = "gstreamer1.0 gstreamer1.0-plugins-base sqlite3"

PV = "0.6.0+git"

SRC_URI = "git://github.com/edgerec/edgerec.git;protocol=https;branch=main"
# The recipe lives in the repository it builds: pin a commit here for reproducible images.
# nooelint: oelint.vars.autorev
SRCREV = "${AUTOREV}"

S = "${WORKDIR}/git"

inherit cargo cargo-update-recipe-crates pkgconfig systemd useradd

require ${BPN}-crates.inc
require ${BPN}-licenses.inc

# edgerec's rust-version (Cargo.toml). scarthgap's own Rust is 1.75: the layer depends on the
# scarthgap/rust branch of meta-lts-mixins; refuse an older Rust here rather than fail deep in
# do_compile.
EDGEREC_MIN_RUST = "1.88"
# nooelint: oelint.task.noanonpython - one comparison at parse time, so a too old Rust is named at once
python () {
    have = (d.getVar('RUSTVERSION') or '0').rstrip('%')
    need = d.getVar('EDGEREC_MIN_RUST')
    if bb.utils.vercmp_string_op(have, need, '<'):
        raise bb.parse.SkipRecipe('edgerec needs Rust %s or newer, RUSTVERSION is %s: add the scarthgap/rust branch of meta-lts-mixins' % (need, have))
}

# Optional parts (cargo features): "upload" (S3, Azure Blob, a share), "mqtt", and "ui" (the
# browser page at /, with hls.js embedded: Apache-2.0, listed in edgerec-licenses.inc). A
# record-only image leaves them out: PACKAGECONFIG:pn-edgerec = "". The RTSP test camera
# (feature "testcam") needs gst-rtsp-server and is never shipped.
# "cloud" (`edgerec serve`, playback from the object store) is for servers, never for an image.
PACKAGECONFIG ??= "upload mqtt ui"
PACKAGECONFIG[upload] = ""
PACKAGECONFIG[mqtt] = ""
PACKAGECONFIG[ui] = ""
CARGO_BUILD_FLAGS += "--no-default-features --features '${@','.join(d.getVar('PACKAGECONFIG').split())}' --bin edgerec"

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/edgerec --no-create-home \
                       --shell /sbin/nologin --user-group edgerec"

SYSTEMD_SERVICE:${PN} = "edgerec.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    install -d ${D}${systemd_system_unitdir} ${D}${nonarch_libdir}/sysusers.d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${S}/systemd/edgerec.service ${D}${systemd_system_unitdir}/edgerec.service
    install -m 0644 ${S}/systemd/edgerec.sysusers ${D}${nonarch_libdir}/sysusers.d/edgerec.conf
    install -m 0644 ${S}/systemd/edgerec.tmpfiles ${D}${nonarch_libdir}/tmpfiles.d/edgerec.conf
    install -d ${D}${sysconfdir}/edgerec
    install -m 0640 -g edgerec ${S}/systemd/edgerec.toml ${D}${sysconfdir}/edgerec/edgerec.toml
    sed -i -e 's,/usr/bin/,${bindir}/,g' ${D}${systemd_system_unitdir}/edgerec.service
}

FILES:${PN} += "${systemd_system_unitdir}/edgerec.service \
                ${nonarch_libdir}/sysusers.d/edgerec.conf \
                ${nonarch_libdir}/tmpfiles.d/edgerec.conf"
CONFFILES:${PN} = "${sysconfdir}/edgerec/edgerec.toml"

# Exactly the GStreamer plugins the pipeline loads: appsink (app), h264parse/h265parse
# (videoparsersbad), h264timestamper/h265timestamper (codectimestamper), rtph264depay/rtph265depay
# (rtp), rtpbin (rtpmanager), rtspsrc (rtsp), udpsrc for UDP transport (udp). The fMP4 muxer is
# linked into the binary, so isomp4 is not needed.
RDEPENDS:${PN} = "gstreamer1.0-plugins-bad-codectimestamper \
                  gstreamer1.0-plugins-bad-videoparsersbad \
                  gstreamer1.0-plugins-base-app \
                  gstreamer1.0-plugins-good-rtp \
                  gstreamer1.0-plugins-good-rtpmanager \
                  gstreamer1.0-plugins-good-rtsp \
                  gstreamer1.0-plugins-good-udp"

# Motion detection ([camera.motion], off by default): videoconvert (videoconvertscale), and for a
# substream decodebin (playback) and videorate. It also needs an H.264/H.265 decoder: a board's
# hardware decoder (v4l2codecs, a vendor element) or gstreamer1.0-libav, which oe-core marks
# LICENSE_FLAGS = "commercial"; the image chooses (docs/motion.md).
RRECOMMENDS:${PN} = "gstreamer1.0-plugins-base-videoconvertscale \
                     gstreamer1.0-plugins-base-playback \
                     gstreamer1.0-plugins-base-videorate \
                     gstreamer1.0-plugins-base-audioconvert \
                     gstreamer1.0-plugins-good-audioparsers \
                     gstreamer1.0-plugins-good-mulaw \
                     gstreamer1.0-plugins-good-alaw"

# Audio (audio = "auto", off by default): queue (coreelements, in gstreamer1.0 itself); for G.711
# cameras mulawdec/alawdec (mulaw, alaw), audioconvert and aacparse (audioparsers) above, and an
# AAC encoder: voaacenc (the default; gstreamer1.0-plugins-bad with PACKAGECONFIG "voaacenc" and
# the vo-aacenc recipe of meta-oe, Apache-2.0), avenc_aac from gstreamer1.0-libav (LICENSE_FLAGS
# "commercial", about 18 times the CPU) or a board's own, named by [pipeline] aac_encoder. AAC
# cameras need none of these but queue. The image chooses, as for the motion decoder.
