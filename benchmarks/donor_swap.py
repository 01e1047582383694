"""Donor rendering (issue 31, prototype): de-identification and diversity of a donor's face rendered into
held-out faces, as benchmarks/deidentification.py measures the other methods.

    python benchmarks/donor_swap.py [--limit 200] [--adults] [--picture runs/donor_swap.png]

Faces: the held-out tenth of ../shared/data/faces-utk (sorted by name; --adults keeps ages 13 and up). For
each face: its 468-point mesh (models/face_mesh.md), two donors of models/donors,
each rendered in with anonymizer.pipeline.donor_swap.render_face; the donors are chosen by two passwords
(choose_donor: suitable donors, weighted towards the face's skin lightness). "De-identified": dlib's descriptor of
the output at the original face's box is more than 0.6 from the original's; "still a face": dlib's HOG
detector finds one; "passwords differ": the two outputs are more than 0.6 apart for dlib. Printed overall and
by age group. --picture writes original | donor A | donor B for the first 24 faces (research data: keep
it out of the repository).
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
from tqdm import tqdm

from _data import DATA, require

from anonymizer.audit.recognizers import DlibRecognizer, distance
from anonymizer.nn import face_mesh
from anonymizer.nn.facemesh import mesh_in_image
from anonymizer.pipeline.donor_swap import choose_donor, donor_weights, face_region, render_face
from anonymizer.pipeline.donors import DonorBank
from anonymizer.pipeline.photo import configure_runtime
from anonymizer.train.faces import age_of, prepare_faces
from anonymizer.vault.surrogate import SurrogateSeed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--adults", action="store_true", help="only faces of ages 13 and up")
    ap.add_argument("--picture", help="write a contact sheet of the first 24 faces here")
    args = ap.parse_args()
    configure_runtime(2)
    net, bank, rec = face_mesh(), DonorBank.load(), DlibRecognizer()
    fs = prepare_faces(require(DATA / "faces-utk"))
    idx = np.flatnonzero(fs.held_out & np.isfinite(fs.descriptors).all(1))
    if args.adults:
        idx = np.array([i for i in idx if age_of(str(fs.names[i])) >= 13])
    idx = idx[: args.limit]
    weights = donor_weights(bank)
    seeds = SurrogateSeed.from_password("benchmark password A"), SurrogateSeed.from_password("benchmark password B")
    deid, face, differ, cells = [], [], [], []
    for i in tqdm(idx, unit="face"):
        rgb, f = fs.load_rgb(i), fs.face(i)
        target = mesh_in_image(net, rgb, f.box, f.landmarks)
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)[face_region(target, rgb.shape[:2])]
        lightness = float(lab[:, 0].mean()) * 100 / 255 if len(lab) else 50.0
        ctx = rgb.tobytes()  # as anonymize_image does: the photo's digest mixed into the seed
        a, b = (choose_donor(s.for_context(ctx), 0, bank, weights, lightness) for s in seeds)
        out = render_face(rgb, target, bank.image(a), bank.mesh(a), bank.triangles)[0]
        other = render_face(rgb, target, bank.image(b), bank.mesh(b), bank.triangles)[0]
        e = rec.embed(out, f)
        deid.append(distance(fs.descriptors[i], e) > 0.6)
        face.append(rec.count_faces(out) > 0)
        differ.append(distance(e, rec.embed(other, f)) > 0.6)
        if len(cells) < 24:
            cells.append(np.concatenate([rgb, out, other], 1))
    deid_a, face_a, differ_a = np.array(deid), np.array(face), np.array(differ)
    ages = np.array([age_of(str(fs.names[i])) for i in idx])
    print(f"{len(idx)} held-out faces: de-identified {deid_a.mean():.1%}, still a face {face_a.mean():.1%}, passwords differ {differ_a.mean():.1%}")
    for lo, hi in ((0, 4), (5, 12), (13, 200)):
        m = (ages >= lo) & (ages <= hi)
        if m.any():
            print(f"  ages {lo}-{hi}: {m.sum()} faces, de-identified {deid_a[m].mean():.1%}, still a face "
                  f"{face_a[m].mean():.1%}, passwords differ {differ_a[m].mean():.1%}")
    if args.picture and cells:
        rows = [np.concatenate(cells[k : k + 2], 1) for k in range(0, len(cells) - 1, 2)]
        cv2.imwrite(args.picture, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
