"""Render a `Scene` with numpy ray casting: exact occlusion (z-buffer), Lambert shading and cast shadows.

Each pixel's ray d = K^-1 [u, v, 1] has d_z = 1, so the ray parameter t is the camera depth z. Objects are
intersected analytically in their own frame (box, ellipsoid, vertical cylinder, vertical cone), and only inside the
image box of their projected 3D box, which keeps a 384 px scene at a few milliseconds per object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cambrian.cvbench.world import GROUNDS, Scene

AMBIENT = 0.42
SKY_TOP = np.array([120.0, 165.0, 225.0])
SKY_HORIZON = np.array([205.0, 222.0, 240.0])
NO_HIT = np.inf


@dataclass
class Rendering:
    image: np.ndarray  # [H, W, 3] uint8
    depth: np.ndarray  # [H, W] float, camera z (inf for sky)
    instance: np.ndarray  # [H, W] int32: index into scene.objects of the visible object, -1 ground, -2 sky
    amodal_boxes: list[tuple[int, int, int, int] | None]  # per object: tight [x1, y1, x2, y2) box of its own pixels
    amodal_pixels: list[int]  # per object: pixels it would cover with nothing in front


def _intersect(shape: str, o: np.ndarray, d: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First hit t (> 0, else inf) and the object-frame normal of rays o + t d ([N, 3]) with a unit-free shape.

    `half` = dimensions / 2. Coordinates are scaled so the shape becomes a unit shape; normals are mapped back.
    """
    o = o / half
    d = d / half
    n = o.shape[0]
    t_best = np.full(n, NO_HIT)
    normal = np.zeros((n, 3))
    eps = 1e-9

    def take(t: np.ndarray, nrm: np.ndarray) -> None:
        better = (t > eps) & (t < t_best)
        t_best[better] = t[better]
        normal[better] = nrm[better]

    if shape == "box":
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / d
            t1, t2 = (-1 - o) * inv, (1 - o) * inv
        t_near = np.minimum(t1, t2)
        t_far = np.maximum(t1, t2)
        axis = np.argmax(t_near, axis=1)
        t_in = t_near[np.arange(n), axis]
        hit = (t_in <= t_far.min(axis=1)) & (t_in > eps)
        nrm = np.zeros((n, 3))
        nrm[np.arange(n), axis] = -np.sign(d[np.arange(n), axis])
        take(np.where(hit, t_in, NO_HIT), nrm)
    elif shape == "sphere":
        a = (d * d).sum(1)
        b = (o * d).sum(1)
        c = (o * o).sum(1) - 1
        disc = b * b - a * c
        t = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / a, NO_HIT)
        take(t, o + t[:, None] * d)
    elif shape in ("cylinder", "cone"):
        ox, oy, oz = o.T
        dx, dy, dz = d.T
        if shape == "cylinder":  # x^2 + z^2 = 1, |y| <= 1
            a, b, c = dx * dx + dz * dz, ox * dx + oz * dz, ox * ox + oz * oz - 1
        else:  # apex at y = -1 (top), base radius 1 at y = +1: x^2 + z^2 = ((y + 1) / 2)^2
            k = 0.25
            a = dx * dx + dz * dz - k * dy * dy
            b = ox * dx + oz * dz - k * (oy + 1) * dy
            c = ox * ox + oz * oz - k * (oy + 1) ** 2
        disc = b * b - a * c
        sq = np.sqrt(np.maximum(disc, 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            for root in ((-b - sq) / a, (-b + sq) / a):
                y = oy + root * dy
                ok = (disc >= 0) & np.isfinite(root) & (np.abs(y) <= 1)
                p = o + root[:, None] * d
                nrm = p.copy()
                nrm[:, 1] = 0 if shape == "cylinder" else -k * (p[:, 1] + 1)
                take(np.where(ok, root, NO_HIT), nrm)
            caps = (-1.0, 1.0) if shape == "cylinder" else (1.0,)
            for y_cap in caps:  # flat caps (the cone has only its base)
                t = (y_cap - oy) / dy
                p = o + t[:, None] * d
                ok = np.isfinite(t) & (p[:, 0] ** 2 + p[:, 2] ** 2 <= 1)
                nrm = np.zeros((n, 3))
                nrm[:, 1] = y_cap
                take(np.where(ok, t, NO_HIT), nrm)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    normal = normal / half  # the gradient of the scaled implicit surface, back in object units
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    return t_best, normal


def _window(uv: np.ndarray, w: int, h: int) -> tuple[int, int, int, int]:
    x1, y1 = np.floor(uv.min(0)).astype(int)
    x2, y2 = np.ceil(uv.max(0)).astype(int) + 1
    return max(int(x1), 0), max(int(y1), 0), min(int(x2), w), min(int(y2), h)


def _shade(colors: np.ndarray, normals: np.ndarray, rays: np.ndarray, sun: np.ndarray) -> np.ndarray:
    """Lambert plus a small Blinn-Phong highlight, [N, 3] colours for [N, 3] camera-frame normals."""
    lambert = np.clip(normals @ sun, 0.0, 1.0)
    half_vec = sun - rays / np.linalg.norm(rays, axis=1, keepdims=True)
    half_vec /= np.linalg.norm(half_vec, axis=1, keepdims=True)
    spec = 60.0 * np.clip((normals * half_vec).sum(1), 0.0, 1.0) ** 24
    return colors * (AMBIENT + (1 - AMBIENT) * lambert)[:, None] + spec[:, None]


def render_scene(scene: Scene) -> Rendering:
    cam = scene.camera
    W, H = cam.width, cam.height
    K = cam.K
    rx = ((np.arange(W) + 0.5 - K[0, 2]) / K[0, 0])[None, :]  # ray = (rx, ry, 1): separable, no [H, W, 3] grid
    ry = ((np.arange(H) + 0.5 - K[1, 2]) / K[1, 1])[:, None]
    R_wc = cam.R_wc
    up = R_wc[:, 2]  # world +Z in camera coordinates
    sun_w = scene.sun_direction_world()
    sun = R_wc @ sun_w

    def rays_in(x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
        gx, gy = np.broadcast_arrays(rx[:, x1:x2], ry[y1:y2])
        return np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)], 1)

    def lin(a: float, b: float, c: float) -> np.ndarray:
        """a * rx + b * ry + c, skipping zero terms so that a row- or column-constant stays [H, 1] or [1, W]."""
        return (a * rx if a else 0.0) + (b * ry if b else 0.0) + c + np.zeros((1, 1))

    # ground plane: up . p = -cam_height (with no camera roll, the ground depth is constant along each row)
    denom = lin(up[0], up[1], up[2])
    with np.errstate(divide="ignore"):
        ground_t = np.where(denom < -1e-9, -cam.cam_height / denom, NO_HIT)
    depth = np.broadcast_to(ground_t, (H, W)).copy()
    instance = np.where(np.isfinite(depth), -1, -2).astype(np.int32)
    rgb = np.zeros((H, W, 3), np.float32)
    amodal_boxes: list[tuple[int, int, int, int] | None] = []
    amodal_pixels: list[int] = []
    poses = [scene.pose(o) for o in scene.objects]

    for index, pose in enumerate(poses):
        x1, y1, x2, y2 = _window(cam.project(pose.corners()), W, H)
        d = rays_in(x1, y1, x2, y2)
        R = pose.R_cam
        o_local = np.broadcast_to(-(pose.center_cam @ R), d.shape)
        t, n_local = _intersect(scene.objects[index].spec.shape, o_local, d @ R, pose.dimensions / 2)
        hit = np.isfinite(t).reshape(y2 - y1, x2 - x1)
        amodal_pixels.append(int(hit.sum()))
        if hit.any():
            ys, xs = np.nonzero(hit)
            x_lo, y_lo = x1 + int(xs.min()), y1 + int(ys.min())
            amodal_boxes.append((x_lo, y_lo, x1 + int(xs.max()) + 1, y1 + int(ys.max()) + 1))
        else:
            amodal_boxes.append(None)
        front = (t < depth[y1:y2, x1:x2].ravel())
        if not front.any():
            continue
        color = np.array(scene.objects[index].color, float)
        shaded = _shade(color[None], n_local[front] @ R.T, d[front], sun)
        fy, fx = np.divmod(np.nonzero(front)[0], x2 - x1)
        depth[y1 + fy, x1 + fx] = t[front]
        instance[y1 + fy, x1 + fx] = index
        rgb[y1 + fy, x1 + fx] = shaded

    # ground: a 1 m checker in world coordinates, lit by the sun unless a cast shadow covers it
    ground = instance == -1
    t_g = np.where(np.isfinite(ground_t), ground_t, 0.0)  # world X, Y of the ground point seen by each pixel
    X = t_g * lin(R_wc[0, 0], R_wc[1, 0], R_wc[2, 0])
    Y = t_g * lin(R_wc[0, 1], R_wc[1, 1], R_wc[2, 1])
    lit = np.ones((H, W), np.float32)
    for index, pose in enumerate(poses):
        corners_w = pose.corners() @ R_wc + cam.position
        on_ground = corners_w - sun_w * (corners_w[:, 2:3] / sun_w[2])
        shadow_cam = cam.world_to_cam(np.concatenate([on_ground, corners_w]))
        if shadow_cam[:, 2].min() <= 0.05:
            continue
        x1, y1, x2, y2 = _window(cam.project(shadow_cam), W, H)
        if x2 <= x1 or y2 <= y1:
            continue
        mask = ground[y1:y2, x1:x2].ravel()
        if not mask.any():
            continue
        R = pose.R_cam
        p = rays_in(x1, y1, x2, y2)[mask] * depth[y1:y2, x1:x2].ravel()[mask, None]
        t, _ = _intersect(scene.objects[index].spec.shape, (p - pose.center_cam) @ R,
                          np.broadcast_to(sun @ R, p.shape), pose.dimensions / 2)
        fy, fx = np.divmod(np.nonzero(mask)[0][np.isfinite(t)], x2 - x1)
        lit[y1 + fy, x1 + fx] = 0.0
    checker = ((np.floor(X) + np.floor(Y)) % 2 == 0).astype(np.float32)
    fog = np.clip((np.where(np.isfinite(ground_t), ground_t, 0.0) - 8.0) / 40.0, 0.0, 0.5).astype(np.float32)
    sun_light = (1 - AMBIENT) * max(float(up @ sun), 0.0)
    shade_a, shade_b = (np.array(c, np.float32) for c in GROUNDS[scene.ground])
    horizon = SKY_HORIZON.astype(np.float32)
    rows = np.linspace(0.0, 1.0, H, dtype=np.float32)[:, None, None]
    sky = SKY_TOP.astype(np.float32) * (1 - rows) + horizon * rows  # [H, 1, 3]
    light = ((AMBIENT + sun_light * lit) * (1 - fog))[..., None]  # [H, W, 1]
    albedo = shade_b + checker[..., None] * (shade_a - shade_b)
    ground_rgb = albedo * light + horizon * fog[..., None]
    image = np.where((instance == -1)[..., None], ground_rgb, sky)
    np.copyto(image, rgb, where=(instance >= 0)[..., None])
    image += 0.5
    np.clip(image, 0, 255, out=image)
    return Rendering(image.astype(np.uint8), depth, instance, amodal_boxes, amodal_pixels)
