"""Where the teacher's outputs come from: a live model, a per-example output cache (`cache`), stored augmented
views (`views`), whole-image maps (`maps`), a model file in another runtime (`files`), and the recipe's choice
among them (`source`)."""

from kd_keras.teachers.cache import TeacherOutputCache, teacher_fingerprint
from kd_keras.teachers.files import load_file_teacher
from kd_keras.teachers.maps import TeacherMapsCache
from kd_keras.teachers.views import TeacherViewsCache

__all__ = ["TeacherMapsCache", "TeacherOutputCache", "TeacherViewsCache", "load_file_teacher", "teacher_fingerprint"]
