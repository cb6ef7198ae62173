"""Extension singletons, bound to the app in ``create_app``."""

from __future__ import annotations

from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from sorregistry.models import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
api = Api()
mail = Mail()
login_manager = LoginManager()
csrf = CSRFProtect()
